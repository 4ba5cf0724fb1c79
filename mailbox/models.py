import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import F, Q, TextField
from django.db.models.functions import Cast, Left
from django.utils.translation import gettext_lazy as _

# The outbox's columns use the shared vocabulary; importable from here as well.
from calmail.common.i18n import render_stored
from calmail.common.mailtypes import (
    AddressType,
    AttachmentType,
    ExportType,
    Source,
)
from smtpconfig.models import SmtpConfiguration


class Status(models.TextChoices):
    SCHEDULED = "scheduled", _("scheduled")
    QUEUED = "queued", _("queued")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    DEFERRED = "deferred", _("deferred")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")


# Long text columns sort by their first characters: a btree entry must stay far below
# PostgreSQL's limit of about 2.7 kB whatever a mail holds, and nobody tells two mails
# apart by their 101st character. The outbox table sorts by exactly these expressions.
SORT_PREFIX_CHARS = 100


def sort_prefix(field: str, *, as_text: bool = False):
    expression = Cast(field, TextField()) if as_text else F(field)
    return Left(expression, SORT_PREFIX_CHARS)


class OutboxMessage(models.Model):
    """One outgoing mail: its content, where it came from, and where its delivery stands.

    The row is the truth; Celery tasks only nudge the delivery engine to look at it.
    """

    # Where it came from (5.6.2 "Mailaktion").
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)
    source_label = models.CharField(
        _("mail action"),
        max_length=200,
        blank=True,
        help_text=_("The action's description when the mail was made."),
    )
    # Recipient as shown in the list; the full lists are in to/cc/bcc.
    recipient = models.CharField(_("recipient"), max_length=1000)
    recipient_owner = models.CharField(_("user/customer"), max_length=200, blank=True)
    address_type = models.CharField(
        _("address type"), max_length=12, choices=AddressType.choices, default=AddressType.ADDRESS
    )
    attachment_count = models.PositiveIntegerField(_("attachments"), default=0)
    export_type = models.CharField(
        _("export type"), max_length=10, choices=ExportType.choices, blank=True
    )
    parameters = models.JSONField(_("parameters"), default=dict, blank=True)
    attachment_type = models.CharField(
        _("attachment type"),
        max_length=4,
        choices=AttachmentType.choices,
        default=AttachmentType.FILE,
    )
    exported_attachments = models.PositiveIntegerField(_("exported attachments"), default=0)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.QUEUED
    )
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    error_message = models.TextField(_("error message"), blank=True)
    # The error as {"msgid", "params"} (calmail.common.i18n), shown in the reader's
    # language; error_message keeps it in the installation's language for search and filters.
    error_text = models.JSONField(_("error message"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    # The message itself.
    from_email = models.CharField(_("from"), max_length=320)
    from_name = models.CharField(_("from name"), max_length=200, blank=True)
    to = models.JSONField(_("to"), default=list)
    cc = models.JSONField(_("cc"), default=list, blank=True)
    bcc = models.JSONField(_("bcc"), default=list, blank=True)
    reply_to = models.JSONField(_("reply to"), default=list, blank=True)
    subject = models.CharField(_("subject"), max_length=998)
    body_text = models.TextField(_("text"), blank=True)
    body_html = models.TextField(_("HTML"), blank=True)
    headers = models.JSONField(_("extra headers"), default=dict, blank=True)
    message_id = models.CharField(_("Message-ID"), max_length=255)
    # The mail as it goes to the server, built once by enqueue() (see mailbox/mime.py);
    # empty for mails whose file attachments are read from storage when they are sent.
    raw_message = models.BinaryField(blank=True, default=b"", editable=False)

    # Delivery bookkeeping.
    smtp_configuration = models.ForeignKey(
        SmtpConfiguration,
        on_delete=models.PROTECT,
        related_name="messages",
        db_index=False,  # outbox_config_status_idx starts with it
        verbose_name=_("SMTP configuration"),
    )
    scheduled_at = models.DateTimeField(_("planned for"), null=True, blank=True)
    attempt_count = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    # NULL, not "": any number of mails may have no key under the unique constraint.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    # When the retention removed the bodies, the raw mail and the attachment files; the
    # record itself (who, to whom, what, when, how it went) is kept for years
    # (mailbox.retention).
    content_purged_at = models.DateTimeField(
        _("content deleted"), null=True, blank=True, editable=False
    )

    # The action that made it (source "action"); its sent count is counted from here.
    action = models.ForeignKey(
        "actions.Action",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="messages",
        verbose_name=_("action"),
    )

    # Who may see it.
    owner_group = models.ForeignKey(
        Group,
        on_delete=models.SET_NULL,
        db_index=False,  # outbox_group_idx starts with it
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("group"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        db_index=False,  # outbox_creator_idx starts with it
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )

    class Meta:
        verbose_name = _("mail")
        verbose_name_plural = _("mails")
        ordering = ["-created_at", "-id"]
        permissions = [
            ("resend_outboxmessage", _("Can resend mails")),
            ("cancel_outboxmessage", _("Can cancel mails")),
        ]
        indexes = [
            # The sweeper: planned mail whose time has come. Partial, like the two below,
            # so that the UPDATE recording a mail's outcome (a new row version, which
            # every index containing it must point to) does not have to maintain it.
            models.Index(
                fields=["next_attempt_at"],
                name="outbox_scheduled_idx",
                condition=Q(status="scheduled"),
            ),
            # Expired leases of rows being sent.
            models.Index(
                fields=["lease_expires_at"], name="outbox_lease_idx", condition=Q(status="sending")
            ),
            # The delivery engine's claim (due rows of one configuration, oldest first) and
            # the sweeper's "anything due?" per configuration: an ordered range scan over
            # the backlog only, with no sort, however many sent rows the outbox holds.
            models.Index(
                fields=["smtp_configuration", "next_attempt_at", "id"],
                name="outbox_claim_idx",
                condition=Q(status__in=["queued", "deferred"]),
            ),
            # The overview's figures are counts over a time range of these two, per
            # status, configuration and team: with those columns in the index they are
            # index-only scans instead of a heap visit per mail (about 55,000 in 30 days at
            # the benchmark's rate). Every status change writes a new entry into each index
            # anyway (status is indexed), so the included columns cost no extra writes,
            # only wider entries.
            models.Index(
                fields=["-created_at", "-id"],
                name="outbox_created_idx",
                include=["status", "owner_group", "created_by"],
            ),
            # With the id, sorting by sent_at reads this index even through the 100,000s
            # of unsent mails (NULL) that lead the descending order.
            models.Index(
                fields=["sent_at", "id"],
                name="outbox_sent_idx",
                include=["status", "smtp_configuration", "owner_group", "created_by"],
            ),
            models.Index(fields=["smtp_configuration", "status"], name="outbox_config_status_idx"),
            models.Index(fields=["owner_group", "-created_at"], name="outbox_group_idx"),
            models.Index(fields=["created_by", "-created_at"], name="outbox_creator_idx"),
            # The content retention's walk: only mails whose content is still stored, so
            # the years of purged records before them are never read again.
            models.Index(
                fields=["created_at"],
                name="outbox_content_kept_idx",
                condition=Q(content_purged_at__isnull=True),
            ),
            # The foreign keys' own indexes are left out (db_index=False) where one of
            # these starts with the column: each would be one more index to maintain on
            # every status change of every mail.
            # The outbox list's sorts: (sort key, id) is exactly the order the list asks
            # for (the table appends the id as tie-breaker), so the first page of a
            # million rows is read from the index in either direction instead of sorting
            # the table. sent_at and created_at are served by the indexes above; the
            # (status, next_attempt_at) one cannot serve status: its "sent" group is most
            # of the table and would be sorted whole.
            models.Index(fields=["status", "id"], name="outbox_sort_status_idx"),
            models.Index(fields=["source_label", "source", "id"], name="outbox_sort_action_idx"),
            models.Index(sort_prefix("recipient"), F("id"), name="outbox_sort_recipient_idx"),
            models.Index(fields=["recipient_owner", "id"], name="outbox_sort_owner_idx"),
            models.Index(fields=["address_type", "id"], name="outbox_sort_addrtype_idx"),
            models.Index(fields=["attachment_count", "id"], name="outbox_sort_attcount_idx"),
            models.Index(fields=["export_type", "id"], name="outbox_sort_export_idx"),
            models.Index(
                sort_prefix("parameters", as_text=True), F("id"), name="outbox_sort_params_idx"
            ),
            models.Index(fields=["attachment_type", "id"], name="outbox_sort_atttype_idx"),
            models.Index(fields=["exported_attachments", "id"], name="outbox_sort_exported_idx"),
            models.Index(sort_prefix("error_message"), F("id"), name="outbox_sort_error_idx"),
            models.Index(sort_prefix("subject"), F("id"), name="outbox_sort_subject_idx"),
        ]
        constraints = [
            # Constraints rather than unique=True: on PostgreSQL a unique CharField also
            # gets a second, text_pattern_ops index for LIKE, which nothing here uses.
            models.UniqueConstraint(fields=["message_id"], name="outbox_message_id_unique"),
            models.UniqueConstraint(
                fields=["idempotency_key"], name="outbox_idempotency_key_unique"
            ),
        ]

    def __str__(self):
        return f"{self.subject} → {self.recipient}"

    @property
    def is_final(self) -> bool:
        return self.status in (Status.SENT, Status.FAILED, Status.CANCELLED)

    @property
    def content_purged(self) -> bool:
        return self.content_purged_at is not None

    @property
    def error_shown(self) -> str:
        """The error in the active language; as stored for mails from before error_text."""
        return render_stored(self.error_text, self.error_message)


def attachment_path(instance, filename):
    # A random folder per attachment: names from users never collide or traverse.
    return f"outbox/{instance.created_at:%Y/%m}/{instance.uuid}/{filename}"


class OutboxAttachment(models.Model):
    """A file of a mail: attached to it, or (attachment type "link") offered by a signed URL."""

    message = models.ForeignKey(OutboxMessage, on_delete=models.CASCADE, related_name="attachments")
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    file = models.FileField(_("file"), upload_to=attachment_path, max_length=500)
    filename = models.CharField(_("file name"), max_length=255)
    content_type = models.CharField(_("content type"), max_length=255)
    size = models.PositiveBigIntegerField(_("size"))
    exported = models.BooleanField(_("exported report"), default=False)
    created_at = models.DateTimeField(_("created"))
    download_count = models.PositiveIntegerField(_("downloads"), default=0)
    last_downloaded_at = models.DateTimeField(_("last download"), null=True, blank=True)

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")
        ordering = ["id"]

    def __str__(self):
        return self.filename


class AttemptOutcome(models.TextChoices):
    SENT = "sent", _("sent")
    DEFERRED = "deferred", _("deferred")
    FAILED = "failed", _("failed")


class DeliveryAttempt(models.Model):
    """One try to hand a mail to its server: shown in the mail's timeline and in the Log."""

    # No index of their own: attempt_message_idx and attempt_config_time_idx start with
    # them, and every delivered mail inserts an attempt.
    message = models.ForeignKey(
        OutboxMessage, on_delete=models.CASCADE, related_name="attempts", db_index=False
    )
    smtp_configuration = models.ForeignKey(
        SmtpConfiguration,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("SMTP configuration"),
        db_index=False,
    )
    started_at = models.DateTimeField(_("time"))
    duration_ms = models.PositiveIntegerField(_("duration (ms)"))
    worker = models.CharField(_("worker"), max_length=200, blank=True)
    outcome = models.CharField(_("outcome"), max_length=10, choices=AttemptOutcome.choices)
    reply_code = models.PositiveSmallIntegerField(_("reply code"), null=True, blank=True)
    reply_text = models.TextField(_("reply"), blank=True)

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        ordering = ["started_at", "id"]
        indexes = [
            models.Index(fields=["message", "started_at"], name="attempt_message_idx"),
            # Rate limits count recent successful sends per configuration.
            models.Index(
                fields=["smtp_configuration", "started_at"], name="attempt_config_time_idx"
            ),
            # The overview's failures per hour: a few rows, not every attempt of 30 days.
            models.Index(
                fields=["started_at"],
                name="attempt_failed_time_idx",
                condition=Q(outcome="failed"),
            ),
            # The Log's delivery attempts tab, newest first over all configurations
            # (created by maillog 0002; known here since mailbox 0011, so that SQLite's
            # table rebuilds keep it).
            models.Index(fields=["-started_at", "-id"], name="attempt_time_idx"),
        ]

    def __str__(self):
        return f"{self.started_at:%Y-%m-%d %H:%M:%S} {self.outcome} {self.reply_code or ''}"


class DeliverySlot(models.Model):
    """One of a configuration's parallel connections (max_connections), across all workers.

    A worker holds a slot while it has a connection to the server open. The lease makes a
    killed worker's slot free again once it expires; a live worker renews it.
    """

    smtp_configuration = models.ForeignKey(
        SmtpConfiguration,
        # Slots are bookkeeping, not a use of the configuration: they never block deleting it.
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("SMTP configuration"),
    )
    number = models.PositiveSmallIntegerField(_("number"))
    holder = models.CharField(_("held by"), max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(_("lease expires"), null=True, blank=True)

    class Meta:
        verbose_name = _("connection slot")
        verbose_name_plural = _("connection slots")
        ordering = ["smtp_configuration", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["smtp_configuration", "number"], name="delivery_slot_unique"
            )
        ]

    def __str__(self):
        return f"{self.smtp_configuration_id}/{self.number} {self.holder or '-'}"
