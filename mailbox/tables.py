import json

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from calmail.common.tables import (
    CalmailTable,
    LocalDateTimeColumn,
    MenuItem,
    RowMenuColumn,
    SelectionColumn,
)
from inventory.models import DueFilter
from mailbox.models import DeliveryAttempt, OutboxMessage, Status, sort_prefix
from mailbox.transitions import REFUSALS

STATUS_BADGES = {
    Status.SCHEDULED: "text-bg-light border",
    Status.QUEUED: "text-bg-info",
    Status.SENDING: "text-bg-primary",
    Status.SENT: "text-bg-success",
    Status.DEFERRED: "text-bg-warning",
    Status.FAILED: "text-bg-danger",
    Status.CANCELLED: "text-bg-secondary",
}

# How much of a long cell the page shows; the rest is in the tooltip and in exports.
CELL_CHARS = 60


def status_badge(message) -> str:
    return format_html(
        '<span class="badge {}">{}</span>',
        STATUS_BADGES.get(message.status, "text-bg-secondary"),
        message.get_status_display(),
    )


def mail_action_label(message) -> str:
    """The action's description, or what made the mail (compose, test, system)."""
    return message.source_label or str(message.get_source_display())


# The keys the sections write into a mail's parameters (templates_app.services.render_mail,
# compose.services), in the order they are shown; other keys show as "key: value".
PARAMETER_LABELS = {
    "template": _("Template"),
    "language": _("Language"),
    "report": _("Report"),
    "filter": _("Filter"),
    "due_window_days": _("Due window (days)"),
    "rows": _("Report rows"),
    "report_scope": _("Report scope"),
    "scope": _("Scope key"),
    "compose_batch": _("Compose batch"),
}
PARAMETER_VALUES = {"filter": dict(DueFilter.choices)}


def _parameter_value(key, value) -> str:
    if isinstance(value, str):
        return str(PARAMETER_VALUES.get(key, {}).get(value, value))
    return json.dumps(value, ensure_ascii=False)


def parameters_text(parameters) -> str:
    """The parameters in words: "Template: Kalibrier-Erinnerung · Language: de"."""
    if not isinstance(parameters, dict):
        return json.dumps(parameters, ensure_ascii=False)
    known = [key for key in PARAMETER_LABELS if key in parameters]
    others = [key for key in parameters if key not in PARAMETER_LABELS]
    return " · ".join(
        f"{PARAMETER_LABELS.get(key, key)}: {_parameter_value(key, parameters[key])}"
        for key in known + others
    )


def _truncated(text: str):
    """A long text cut in the cell; the whole of it on hover (title)."""
    short = Truncator(text).chars(CELL_CHARS)
    if short == text:
        # Still a title: the cell's width may cut a short text too.
        return format_html('<span class="d-inline-block truncate" title="{}">{}</span>', text, text)
    return format_html(
        '<span class="d-inline-block truncate" title="{}" data-bs-toggle="tooltip">{}</span>',
        text,
        short,
    )


ROW_ACTIONS = (
    ("resend", _("Resend"), "arrow-repeat", "mailbox.resend_outboxmessage", False),
    ("cancel", _("Cancel sending"), "x-circle", "mailbox.cancel_outboxmessage", False),
    ("delete", _("Delete"), "trash", "mailbox.delete_outboxmessage", True),
)


def message_actions(message, user) -> list[MenuItem]:
    """Links to the confirm pages of what the user may do with the mail in its status:
    only where it can succeed (the confirm page explains refusals anyway)."""
    items = []
    for name, label, icon, permission, danger in ROW_ACTIONS:
        if REFUSALS[name](message) is None and user.has_perm(permission):
            url = reverse(f"mailbox:{name}", args=[message.pk])
            items.append(MenuItem(label, url, icon, danger=danger))
    return items


class OutboxTable(CalmailTable):
    """The 14 columns of 5.6.2, in the order calServer shows them; a page shows seven of
    them until the user chooses (they fit 1,366 px)."""

    default_columns = (
        "mail_action",
        "recipient",
        "attachment_count",
        "status",
        "sent_at",
        "error_message",
        "content",
    )
    filter_columns = {"source": "mail_action", "source_label": "mail_action", "subject": "content"}

    selection = SelectionColumn()
    mail_action = tables.Column(
        verbose_name=_("Mail action"),
        accessor="source_label",
        empty_values=(),
        order_by=("source_label", "source"),
    )
    recipient = tables.Column(verbose_name=_("Recipient"))
    recipient_owner = tables.Column(verbose_name=_("User/Customer"))
    address_type = tables.Column(verbose_name=_("Address type"))
    attachment_count = tables.Column(
        verbose_name=_("Attachments"), attrs={"td": {"class": "text-end"}}
    )
    export_type = tables.Column(verbose_name=_("Export type"), empty_values=())
    parameters = tables.Column(verbose_name=_("Parameters"))
    attachment_type = tables.Column(verbose_name=_("Attachment type"), empty_values=())
    exported_attachments = tables.Column(
        verbose_name=_("Exported attachments"), attrs={"td": {"class": "text-end"}}
    )
    status = tables.Column(verbose_name=_("Status"))
    sent_at = LocalDateTimeColumn(verbose_name=_("Sent"))
    error_message = tables.Column(verbose_name=_("Error message"))
    created_at = LocalDateTimeColumn(verbose_name=_("Created"))
    content = tables.Column(
        verbose_name=_("Message content"), accessor="subject", order_by=("subject",)
    )
    actions = RowMenuColumn()

    class Meta(CalmailTable.Meta):
        model = OutboxMessage
        fields = ()
        sequence = (
            "selection",
            "mail_action",
            "recipient",
            "recipient_owner",
            "address_type",
            "attachment_count",
            "export_type",
            "parameters",
            "attachment_type",
            "exported_attachments",
            "status",
            "sent_at",
            "error_message",
            "created_at",
            "content",
            "actions",
        )
        order_by = ("-created_at",)

    def render_mail_action(self, record):
        return _truncated(str(mail_action_label(record)))

    def value_mail_action(self, record):
        return mail_action_label(record)

    def render_recipient(self, value):
        return _truncated(value)

    def value_recipient(self, value):
        return value

    def render_recipient_owner(self, value):
        return _truncated(value)

    def value_recipient_owner(self, value):
        return value

    def render_attachment_type(self, record):
        # A mail without attachments has none: its stored type is only the default.
        return record.get_attachment_type_display() if record.attachment_count else "—"

    def value_attachment_type(self, record):
        return str(record.get_attachment_type_display()) if record.attachment_count else ""

    def render_parameters(self, value):
        return format_html('<span class="parameters">{}</span>', _truncated(parameters_text(value)))

    def value_parameters(self, value):
        # Exports carry the exact JSON, so a spreadsheet round trip loses nothing.
        return json.dumps(value, ensure_ascii=False, sort_keys=True)

    def render_status(self, record):
        return status_badge(record)

    def value_status(self, record):
        return str(record.get_status_display())

    # In the reader's language (error_text); the filter and sort use the stored text.
    def render_error_message(self, record):
        return _truncated(record.error_shown)

    def value_error_message(self, record):
        return record.error_shown

    def render_content(self, record):
        # The subject, cut, as the link to the message content (the detail page).
        return format_html(
            '<a class="d-inline-block truncate" href="{}" title="{}">{}</a>',
            reverse("mailbox:detail", args=[record.pk]),
            record.subject,
            Truncator(record.subject).chars(CELL_CHARS) or _("show"),
        )

    def value_content(self, record):
        return record.subject

    def order_created_at(self, queryset, is_descending):
        # The id breaks ties between mails of the same instant (one transaction); the pair
        # matches the index, so the first page of a million rows is read from it directly.
        direction = "-" if is_descending else ""
        return queryset.order_by(f"{direction}created_at", f"{direction}id"), True

    def order_sent_at(self, queryset, is_descending):
        # The database's own NULL placement, so the sent_at index serves both directions.
        direction = "-" if is_descending else ""
        return queryset.order_by(f"{direction}sent_at", f"{direction}id"), True

    # Long text sorts by its indexed prefix (mailbox.models.sort_prefix), with the id as
    # tie-breaker in the same direction: the pair is the index, so no table sort.
    def _order_by_prefix(self, queryset, is_descending, field, *, as_text=False):
        key = sort_prefix(field, as_text=as_text)
        if is_descending:
            return queryset.order_by(key.desc(), "-id"), True
        return queryset.order_by(key.asc(), "id"), True

    def order_recipient(self, queryset, is_descending):
        return self._order_by_prefix(queryset, is_descending, "recipient")

    def order_parameters(self, queryset, is_descending):
        return self._order_by_prefix(queryset, is_descending, "parameters", as_text=True)

    def order_error_message(self, queryset, is_descending):
        return self._order_by_prefix(queryset, is_descending, "error_message")

    def order_content(self, queryset, is_descending):
        return self._order_by_prefix(queryset, is_descending, "subject")

    def get_row_menu(self, record):
        show = MenuItem(_("Show"), reverse("mailbox:detail", args=[record.pk]), "eye")
        return [show, *message_actions(record, self.user)]


class DeliveryAttemptTable(CalmailTable):
    default_columns = (
        "started_at",
        "mail",
        "recipient",
        "smtp_configuration",
        "outcome",
        "reply_code",
        "reply_text",
    )
    filter_columns = {"message": "mail"}

    started_at = LocalDateTimeColumn(verbose_name=_("Time"))
    mail = tables.Column(
        verbose_name=_("Mail"), accessor="message__subject", order_by=("message__subject",)
    )
    recipient = tables.Column(verbose_name=_("Recipient"), accessor="message__recipient")
    smtp_configuration = tables.Column(
        verbose_name=_("SMTP configuration"), order_by=("smtp_configuration__name",)
    )
    outcome = tables.Column(verbose_name=_("Outcome"))
    reply_code = tables.Column(verbose_name=_("Reply code"), attrs={"td": {"class": "text-end"}})
    reply_text = tables.Column(verbose_name=_("Reply"))
    duration_ms = tables.Column(
        verbose_name=_("Duration (ms)"), attrs={"td": {"class": "text-end"}}
    )
    worker = tables.Column(verbose_name=_("Worker"))

    class Meta(CalmailTable.Meta):
        model = DeliveryAttempt
        fields = ()
        sequence = (
            "started_at",
            "mail",
            "recipient",
            "smtp_configuration",
            "outcome",
            "reply_code",
            "reply_text",
            "duration_ms",
            "worker",
        )
        order_by = ("-started_at",)

    def order_started_at(self, queryset, is_descending):
        direction = "-" if is_descending else ""
        return queryset.order_by(f"{direction}started_at", f"{direction}id"), True

    def render_mail(self, record):
        return format_html(
            '<a href="{}">{}</a>',
            reverse("mailbox:detail", args=[record.message_id]),
            record.message.subject,
        )

    def value_mail(self, record):
        return record.message.subject

    def render_smtp_configuration(self, record):
        configuration = record.smtp_configuration
        if self.user is not None and self.user.has_perm("smtpconfig.view_smtpconfiguration"):
            return format_html(
                '<a href="{}">{}</a>',
                reverse("smtpconfig:detail", args=[configuration.pk]),
                configuration.name,
            )
        return configuration.name

    def value_smtp_configuration(self, record):
        return record.smtp_configuration.name
