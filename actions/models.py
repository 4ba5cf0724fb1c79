from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from inventory.models import Customer
from smtpconfig.models import SmtpConfiguration
from templates_app.models import MailTemplate


class ReportScope(models.TextChoices):
    """The report of an action's recipients that belong to no customer or user (system,
    typed and distribution-list addresses); customers and users always get their own."""

    NONE = "none", _("no report")
    CUSTOMERS = "customers", _("chosen customers")
    ALL = "all", _("all customers (internal)")


class Action(models.Model):
    """A scheduled mail action: a calendar rule, recipients, a template and a configuration.

    next_due_at is the next slot the scheduler must handle, kept by the services (on save,
    on (un)publishing, after each tick); it is empty while the action is unpublished or its
    rule has no further slot, so the tick's index scan touches only due actions.
    """

    description = models.CharField(_("description"), max_length=200)
    # Empty lists mean "any"; days hold 1-31 and "last", weekdays 0 (Monday)-6, months 1-12.
    days = models.JSONField(_("day of month"), default=list, blank=True)
    weekdays = models.JSONField(_("weekday"), default=list, blank=True)
    months = models.JSONField(_("month"), default=list, blank=True)
    time_of_day = models.TimeField(_("time"))
    start = models.DateTimeField(_("start"))
    end = models.DateTimeField(_("end"), null=True, blank=True)
    # Empty: administrators only see and manage the action, and its mails have no team.
    group = models.ForeignKey(
        Group,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="mail_actions",
        verbose_name=_("group"),
    )
    published = models.BooleanField(_("published"), default=True)
    send_without_attachments = models.BooleanField(_("send without attachments"), default=False)
    template = models.ForeignKey(
        MailTemplate, on_delete=models.PROTECT, related_name="actions", verbose_name=_("template")
    )
    smtp_configuration = models.ForeignKey(
        SmtpConfiguration,
        on_delete=models.PROTECT,
        related_name="actions",
        verbose_name=_("SMTP configuration"),
    )
    # Tokens of inventory.recipients ("user:12", "customer:5", "list:3", "system:2", addresses).
    recipients = models.JSONField(_("recipients"), default=list)
    report_scope = models.CharField(
        _("report for other addresses"),
        max_length=10,
        choices=ReportScope.choices,
        default=ReportScope.NONE,
    )
    report_scope_customers = models.ManyToManyField(
        Customer,
        blank=True,
        related_name="+",
        verbose_name=_("customers of the report"),
    )
    next_due_at = models.DateTimeField(_("next run"), null=True, blank=True, db_index=True)
    # Sent mails of this action that the outbox retention has deleted: the sent count is
    # this plus the sent mails still in the outbox, so it stays a lifetime count.
    purged_sent_count = models.PositiveIntegerField(_("sent, purged from the outbox"), default=0)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("changed"), auto_now=True)

    class Meta:
        verbose_name = _("action")
        verbose_name_plural = _("actions")
        ordering = ["description", "pk"]

    def __str__(self):
        return self.description


class Trigger(models.TextChoices):
    SCHEDULE = "schedule", _("schedule")
    CATCH_UP = "catch_up", _("catch-up")
    MANUAL = "manual", _("manual")


class RunStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    RUNNING = "running", _("running")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")
    MISSED = "missed", _("missed")
    CANCELLED = "cancelled", _("cancelled")


class ActionRun(models.Model):
    """One run of an action for one slot; missed slots are kept as runs with status missed."""

    action = models.ForeignKey(
        Action, on_delete=models.CASCADE, related_name="runs", verbose_name=_("action")
    )
    slot = models.DateTimeField(_("slot"))
    trigger = models.CharField(_("trigger"), max_length=10, choices=Trigger.choices)
    status = models.CharField(
        _("status"), max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    queued_count = models.PositiveIntegerField(_("mails queued"), default=0)
    skipped_count = models.PositiveIntegerField(_("skipped"), default=0)
    failed_count = models.PositiveIntegerField(_("failed"), default=0)
    # [{"recipient": "...", "reason": "..."}, ...]
    skipped = models.JSONField(_("skipped recipients"), default=list, blank=True)
    # The audience the run reached: {"mails": n, "skipped": n, "recipients": [{"email",
    # "owner", "rows"}, ...]} with the first RUN_AUDIENCE_SHOWN recipients mailed.
    audience = models.JSONField(_("audience"), default=dict, blank=True)
    error_message = models.TextField(_("error message"), blank=True)

    class Meta:
        verbose_name = _("action run")
        verbose_name_plural = _("action runs")
        ordering = ["-slot", "-pk"]
        constraints = [
            # Exactly once per scheduled slot, however many ticks race; manual runs may repeat.
            models.UniqueConstraint(
                fields=["action", "slot"],
                condition=~Q(trigger="manual"),
                name="actionrun_once_per_slot",
            )
        ]
        indexes = [models.Index(fields=["action", "-slot"], name="actionrun_action_slot_idx")]

    def __str__(self):
        return f"{self.action} @ {self.slot.isoformat()}"
