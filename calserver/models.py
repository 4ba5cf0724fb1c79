import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from calmail.common.fields import EncryptedTextField
from calserver.mapping import KINDS, mapping_errors


class ApiVersion(models.TextChoices):
    V1 = "v1", _("API v1 (username, password, API key)")
    V2 = "v2", _("API v2 (beta, bearer token)")


class CredentialTransport(models.TextChoices):
    """How v1 sends its three credentials. Nginx drops header names with underscores
    unless told otherwise, which is why calServer's partners send query parameters;
    those leak into the server's access log, so headers come first."""

    HEADERS = "headers", _("Request headers")
    QUERY = "query", _("Query parameters")


class SyncInterval(models.IntegerChoices):
    MINUTES_15 = 15, _("every 15 minutes")
    HOURLY = 60, _("hourly")
    HOURS_6 = 360, _("every 6 hours")
    DAILY = 1440, _("daily")


class CalServerConnection(models.Model):
    """The connection to the installation's calServer. One is enough: an installation
    mails about one calServer (the page edits the first row)."""

    base_url = models.URLField(
        _("base URL"), max_length=300, help_text=_("e.g. https://firma.calserver.de")
    )
    api_version = models.CharField(
        _("API version"), max_length=2, choices=ApiVersion.choices, default=ApiVersion.V1
    )
    # v1 credentials
    username = models.CharField(_("API username"), max_length=200, blank=True)
    password = EncryptedTextField(_("API password"), blank=True)
    api_key = EncryptedTextField(_("API key"), blank=True)
    credential_transport = models.CharField(
        _("send v1 credentials as"),
        max_length=10,
        choices=CredentialTransport.choices,
        default=CredentialTransport.HEADERS,
    )
    # v2 credentials
    email = models.EmailField(_("API e-mail address"), blank=True)
    device_name = models.CharField(_("device name"), max_length=100, default="calmail")
    # The v2 bearer token, kept between runs so every sync does not mint a new one.
    api_token = EncryptedTextField(blank=True)

    paths = models.JSONField(_("resource paths"), default=dict, blank=True)
    mapping = models.JSONField(_("field mapping"), default=dict, blank=True)
    page_size = models.PositiveIntegerField(
        _("records per page"),
        default=100,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
    )
    limit_param = models.CharField(_("v1 limit parameter"), max_length=50, default="limit")
    offset_param = models.CharField(_("v1 offset parameter"), max_length=50, default="offset")
    page_number_param = models.CharField(
        _("v2 page number parameter"), max_length=50, default="page[number]"
    )
    page_size_param = models.CharField(
        _("v2 page size parameter"), max_length=50, default="page[size]"
    )
    timeout = models.PositiveSmallIntegerField(
        _("timeout (seconds)"),
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(300)],
    )

    sync_enabled = models.BooleanField(
        _("sync on schedule"),
        default=False,
        help_text=_("Possible once the connection has passed its test."),
    )
    sync_interval_minutes = models.PositiveIntegerField(
        _("sync interval"), choices=SyncInterval.choices, default=SyncInterval.HOURLY
    )
    # Set when the test passed with the settings as they are; any change clears it.
    tested_at = models.DateTimeField(_("test passed"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("calServer connection")
        verbose_name_plural = _("calServer connections")
        permissions = [
            ("sync_calserverconnection", _("Can test and sync the calServer connection"))
        ]

    def __str__(self):
        return self.base_url

    def clean(self):
        errors = {}
        for kind, fields in (self.mapping or {}).items():
            if kind not in KINDS or not isinstance(fields, dict):
                errors.setdefault("mapping", []).append(
                    _("Unknown kind %(kind)s.") % {"kind": kind}
                )
                continue
            errors.setdefault("mapping", []).extend(mapping_errors(kind, fields))
        for kind, path in (self.paths or {}).items():
            if kind not in KINDS or (path and not str(path).startswith("/")):
                errors.setdefault("paths", []).append(
                    _("A resource path starts with /, like /api/inventory.")
                )
        if self.sync_enabled and self.tested_at is None:
            errors["sync_enabled"] = [_("Test the connection first: the test must pass.")]
        errors = {name: messages for name, messages in errors.items() if messages}
        if errors:
            raise ValidationError(errors)

    def path_of(self, kind: str) -> str:
        return (self.paths or {}).get(kind, "") or ""

    def mapping_of(self, kind: str) -> dict:
        return (self.mapping or {}).get(kind, {}) or {}

    @property
    def synced_kinds(self) -> list[str]:
        """The kinds with a path and a mapping of their calServer id."""
        return [
            kind for kind in KINDS if self.path_of(kind) and "external_id" in self.mapping_of(kind)
        ]


class SyncTrigger(models.TextChoices):
    SCHEDULE = "schedule", _("schedule")
    MANUAL = "manual", _("on demand")


class SyncStatus(models.TextChoices):
    RUNNING = "running", _("running")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")


class SyncRun(models.Model):
    """One sync with calServer: what it changed, what it refused and why."""

    connection = models.ForeignKey(
        CalServerConnection, on_delete=models.CASCADE, related_name="runs"
    )
    trigger = models.CharField(_("trigger"), max_length=10, choices=SyncTrigger.choices)
    status = models.CharField(
        _("status"), max_length=10, choices=SyncStatus.choices, default=SyncStatus.RUNNING
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    started_at = models.DateTimeField(_("started"))
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    created = models.PositiveIntegerField(_("created"), default=0)
    updated = models.PositiveIntegerField(_("updated"), default=0)
    unchanged = models.PositiveIntegerField(_("unchanged"), default=0)
    inactivated = models.PositiveIntegerField(_("inactivated"), default=0)
    rejected = models.PositiveIntegerField(_("rejected"), default=0)
    # [{"kind", "id", "reason"}], the first REJECTIONS_KEPT of them.
    rejections = models.JSONField(_("rejected records"), default=list, blank=True)
    # kind -> {"created": n, ...}
    per_kind = models.JSONField(_("per kind"), default=dict, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        verbose_name = _("sync run")
        verbose_name_plural = _("sync runs")
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["connection", "-started_at"], name="calserver_run_idx")]

    def __str__(self):
        return f"{self.started_at:%Y-%m-%d %H:%M} {self.status}"

    @property
    def duration(self) -> dt.timedelta | None:
        if self.finished_at is None:
            return None
        return self.finished_at - self.started_at
