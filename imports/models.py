from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ImportKind(models.TextChoices):
    CUSTOMERS = "customers", _("customers and contacts")
    LOCATIONS = "locations", _("locations")
    INSTRUMENTS = "instruments", _("instruments")
    TICKETS = "tickets", _("support tickets")
    USERS = "users", _("users")


class DateFormat(models.TextChoices):
    GERMAN = "%d.%m.%Y", _("31.12.2026 (day.month.year)")
    ISO = "%Y-%m-%d", _("2026-12-31 (ISO)")
    SLASH_DMY = "%d/%m/%Y", _("31/12/2026 (day/month/year)")
    SLASH_MDY = "%m/%d/%Y", _("12/31/2026 (month/day/year)")


class ImportStatus(models.TextChoices):
    MAPPING = "mapping", _("waiting for the column mapping")
    ANALYSING = "analysing", _("dry run in progress")
    ANALYSED = "analysed", _("dry run done, waiting for confirmation")
    IMPORTING = "importing", _("importing")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")


class MappingTemplate(models.Model):
    """A saved column mapping: which source column feeds which calmail field, how dates
    are written, and value maps (source text → calmail value, e.g. status texts)."""

    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=20, choices=ImportKind.choices)
    # {"source column header": "calmail field"}
    columns = models.JSONField(_("columns"), default=dict, blank=True)
    date_format = models.CharField(
        _("date format"), max_length=20, choices=DateFormat.choices, default=DateFormat.GERMAN
    )
    # {"calmail field": {"source text": "calmail value"}}
    value_maps = models.JSONField(_("value maps"), default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("mapping template")
        verbose_name_plural = _("mapping templates")
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "name"],
                name="imports_mappingtemplate_unique_name",
                violation_error_message=_("A mapping template with this name already exists."),
            )
        ]

    def __str__(self):
        return self.name


class ImportRun(models.Model):
    """One uploaded file on its way in: mapping, dry run, confirmed import, with counts
    and the rejected rows. Kept as the record of who imported what."""

    kind = models.CharField(_("kind"), max_length=20, choices=ImportKind.choices)
    status = models.CharField(
        _("status"), max_length=20, choices=ImportStatus.choices, default=ImportStatus.MAPPING
    )
    file_name = models.CharField(_("file name"), max_length=255)
    # The upload itself, in the database: the worker that analyses it may run elsewhere.
    content = models.BinaryField(_("file content"), editable=False)
    mapping = models.ForeignKey(
        MappingTemplate,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="runs",
        verbose_name=_("mapping template"),
    )
    # The mapping as used ({"columns", "date_format", "value_maps"}): the template may change later.
    mapping_used = models.JSONField(_("mapping used"), default=dict, blank=True)
    mark_missing_inactive = models.BooleanField(
        _("mark records missing from this full export as inactive"), default=False
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("imported by"),
    )
    created_at = models.DateTimeField(_("uploaded"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    rows_total = models.PositiveIntegerField(_("rows"), null=True, blank=True)
    rows_done = models.PositiveIntegerField(_("rows done"), default=0)
    created = models.PositiveIntegerField(_("created"), default=0)
    updated = models.PositiveIntegerField(_("updated"), default=0)
    unchanged = models.PositiveIntegerField(_("unchanged"), default=0)
    rejected = models.PositiveIntegerField(_("rejected"), default=0)
    inactivated = models.PositiveIntegerField(_("marked inactive"), default=0)
    # [{"line": 7, "reason": "…", "values": ["…", …]}], in file order.
    rejections = models.JSONField(_("rejected rows"), default=list, blank=True)
    # The source header row, so the rejected rows download has the file's columns.
    headers = models.JSONField(_("columns of the file"), default=list, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.file_name}"

    @property
    def is_running(self) -> bool:
        return self.status in (ImportStatus.ANALYSING, ImportStatus.IMPORTING)
