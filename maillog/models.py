"""The event log: what happened, when, who did it, to what."""

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from maillog.params import shown_params


class Level(models.TextChoices):
    DEBUG = "debug", _("debug")
    INFO = "info", _("info")
    WARNING = "warning", _("warning")
    ERROR = "error", _("error")


class Category(models.TextChoices):
    SCHEDULER = "scheduler", _("scheduler")
    DELIVERY = "delivery", _("delivery")
    CONFIGURATION = "configuration", _("configuration")
    TEMPLATE = "template", _("template")
    ACTION = "action", _("action")
    COMPOSE = "compose", _("compose")
    SECURITY = "security", _("security")
    USERS = "users", _("users & teams")
    # Sign-ins are many and rarely wanted: the Log list hides them unless asked for.
    SIGN_IN = "sign_in", _("sign-ins")


class AuditAction(models.TextChoices):
    CREATED = "created", _("created")
    UPDATED = "updated", _("updated")
    DELETED = "deleted", _("deleted")


def render_message(message: str, params: dict | None) -> str:
    """The stored English msgid, translated into the active language, with its parameters."""
    text = gettext(message) if message else ""
    if not params:
        return text
    # Choice keys as labels, ISO times as local times (maillog.params).
    params = shown_params(params)
    # A translation (or a stored entry) with a placeholder that does not fit its params
    # must not break the page: fall back to the English text, then to the bare msgid.
    for candidate in (text, message):
        try:
            return candidate % params
        except (KeyError, TypeError, ValueError):
            continue
    return message


class LogEntry(models.Model):
    """One event. The message is an English msgid plus parameters, rendered in the
    language of whoever reads it; `search_text` holds it rendered in every language."""

    time = models.DateTimeField(_("time"), default=timezone.now)
    level = models.CharField(_("level"), max_length=10, choices=Level.choices, default=Level.INFO)
    category = models.CharField(_("category"), max_length=20, choices=Category.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("user"),
    )
    # Kept when the user is deleted; "system" for the scheduler and workers.
    actor_label = models.CharField(_("user"), max_length=200, blank=True)
    content_type = models.ForeignKey(
        ContentType,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("object type"),
    )
    object_id = models.BigIntegerField(_("object ID"), null=True, blank=True)
    object_label = models.CharField(_("object"), max_length=300, blank=True)
    message = models.CharField(_("message"), max_length=500)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    group = models.ForeignKey(
        Group,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("group"),
    )
    audit_action = models.CharField(
        _("change"), max_length=10, choices=AuditAction.choices, blank=True
    )
    # Audit entries: field -> [old, new]; a secret only as "changed".
    changes = models.JSONField(_("changes"), default=dict, blank=True)
    search_text = models.TextField(blank=True, editable=False)

    class Meta:
        verbose_name = _("log entry")
        verbose_name_plural = _("log entries")
        ordering = ["-time", "-id"]
        indexes = [
            # The list's default order, and the time range filter and retention.
            models.Index(fields=["-time", "-id"], name="log_time_idx"),
            # Each column filter walks its own index in the list's order: first page fast.
            models.Index(fields=["level", "-time", "-id"], name="log_level_idx"),
            models.Index(fields=["category", "-time", "-id"], name="log_category_idx"),
            models.Index(fields=["actor", "-time", "-id"], name="log_actor_idx"),
            models.Index(
                fields=["content_type", "object_id", "-time", "-id"], name="log_object_idx"
            ),
            models.Index(fields=["group", "-time", "-id"], name="log_group_idx"),
            models.Index(fields=["audit_action", "-time", "-id"], name="log_audit_idx"),
        ]

    def __str__(self):
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.category} {self.rendered()}"

    def rendered(self, language: str | None = None) -> str:
        if language is None:
            return render_message(self.message, self.params)
        with translation.override(language):
            return render_message(self.message, self.params)
