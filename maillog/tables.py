import django_tables2 as tables
from django.core.exceptions import FieldDoesNotExist
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from calmail.common.tables import CalmailTable, LocalDateTimeColumn
from maillog.links import object_url
from maillog.models import Level, LogEntry
from maillog.params import as_text, shown_param

LEVEL_BADGES = {
    Level.DEBUG: "text-bg-light border",
    Level.INFO: "text-bg-info",
    Level.WARNING: "text-bg-warning",
    Level.ERROR: "text-bg-danger",
}


# Labels of the detail keys the apps write (maillog.services, signals, accounts, actions).
DETAIL_LABELS = {
    "network": _("Network"),
    "verdict": _("Verdict"),
    "reply_code": _("Reply code"),
    "reply_text": _("Reply"),
    "duration_ms": _("Duration (ms)"),
    "status": _("Status"),
    "message_id": _("Message-ID"),
    "mail_id": _("Mail"),
    "run_id": _("Run"),
    "slot": _("Slot"),
    "slots": _("Slots"),
    "skipped": _("Skipped"),
    "error": _("Error"),
    "recipient": _("Recipient"),
    "reason": _("Reason"),
    "cleared_attempts": _("Cleared attempts"),
}


def detail_rows(details) -> list[tuple[str, str]]:
    """(label, value) per detail, in the reader's language and time zone."""
    return [
        (
            str(DETAIL_LABELS.get(key) or capfirst(key.replace("_", " "))),
            as_text(shown_param(key, value)),
        )
        for key, value in (details or {}).items()
    ]


def details_text(details) -> str:
    return "; ".join(f"{label}: {value}" for label, value in detail_rows(details))


def _field_label(model, name: str) -> str:
    try:
        return str(capfirst(model._meta.get_field(name).verbose_name))
    except (AttributeError, FieldDoesNotExist):
        # A field removed since, or no model: its stored name.
        return name


def change_rows(changes, content_type=None) -> list[tuple[str, str, str]]:
    """(field, before, after) per changed field; a secret has "changed" on both sides."""
    model = content_type.model_class() if content_type is not None else None
    rows = []
    for name, change in (changes or {}).items():
        if isinstance(change, list) and len(change) == 2:
            old, new = (as_text(value) for value in change)
        elif change == "changed":
            # A secret: neither value, only that it changed.
            old, new = "•••", str(_("changed"))
        else:
            old, new = "—", as_text(change)
        rows.append((_field_label(model, name), old, new))
    return rows


def changes_text(changes, content_type=None) -> str:
    """`field: old → new; password: changed` for exports."""
    return "; ".join(
        f"{field}: {old} → {new}" for field, old, new in change_rows(changes, content_type)
    )


def _small_table(headers, rows, testid: str):
    head = format_html_join("", '<th scope="col">{}</th>', ((header,) for header in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    return format_html(
        '<table class="table table-sm table-borderless mb-0 small" data-testid="{}">'
        "<thead><tr>{}</tr></thead><tbody>{}</tbody></table>",
        testid,
        head,
        body,
    )


def object_type_label(content_type) -> str:
    if content_type is None:
        return ""
    model = content_type.model_class()
    # capfirst: "SMTP configuration" keeps its capitals (capitalize() lowered them).
    return str(capfirst(model._meta.verbose_name if model else content_type.model))


class LogEntryTable(CalmailTable):
    default_columns = ("time", "level", "category", "actor", "object_type", "object", "message")
    filter_columns = {"content_type": "object_type", "object_id": "object"}

    time = LocalDateTimeColumn(verbose_name=_("Time"))
    level = tables.Column(verbose_name=_("Level"))
    category = tables.Column(verbose_name=_("Category"))
    actor = tables.Column(verbose_name=_("User"), accessor="actor_label")
    object_type = tables.Column(verbose_name=_("Object type"), accessor="content_type")
    object = tables.Column(verbose_name=_("Object"), accessor="object_label")
    # Rendered in the reader's language when shown: the database cannot sort by that.
    message = tables.Column(verbose_name=_("Message"), empty_values=(), orderable=False)
    audit_action = tables.Column(verbose_name=_("Audit"))
    changes = tables.Column(verbose_name=_("Changes"), orderable=False)
    details = tables.Column(verbose_name=_("Details"), orderable=False)

    class Meta(CalmailTable.Meta):
        model = LogEntry
        fields = ()
        sequence = (
            "time",
            "level",
            "category",
            "actor",
            "object_type",
            "object",
            "message",
            "audit_action",
            "changes",
            "details",
        )
        order_by = ("-time",)

    def order_time(self, queryset, is_descending):
        # The pair matches the index: the first page of millions of rows is read from it.
        direction = "-" if is_descending else ""
        return queryset.order_by(f"{direction}time", f"{direction}id"), True

    # Every other sort follows an index (field, -time, -id), read forwards or backwards:
    # ascending shows the newest first within equal values, descending the oldest. Users
    # and objects are grouped by identity (user, object type and id), not by label, which
    # no index could order at millions of rows.
    @staticmethod
    def _indexed(queryset, is_descending, *fields):
        if is_descending:
            keys = [f"-{field}" for field in fields] + ["time", "id"]
        else:
            keys = [*fields, "-time", "-id"]
        return queryset.order_by(*keys), True

    def order_level(self, queryset, is_descending):
        return self._indexed(queryset, is_descending, "level")

    def order_category(self, queryset, is_descending):
        return self._indexed(queryset, is_descending, "category")

    def order_audit_action(self, queryset, is_descending):
        return self._indexed(queryset, is_descending, "audit_action")

    def order_actor(self, queryset, is_descending):
        return self._indexed(queryset, is_descending, "actor")

    def order_object_type(self, queryset, is_descending):
        return self._indexed(queryset, is_descending, "content_type", "object_id")

    def order_object(self, queryset, is_descending):
        return self._indexed(queryset, is_descending, "content_type", "object_id")

    def render_level(self, record):
        return format_html(
            '<span class="badge {}">{}</span>',
            LEVEL_BADGES.get(record.level, "text-bg-secondary"),
            record.get_level_display(),
        )

    def value_level(self, record):
        return str(record.get_level_display())

    def render_category(self, record):
        return record.get_category_display()

    def value_category(self, record):
        return str(record.get_category_display())

    def render_audit_action(self, record):
        return record.get_audit_action_display()

    def value_audit_action(self, record):
        return str(record.get_audit_action_display())

    def render_object_type(self, value):
        return object_type_label(value)

    def value_object_type(self, value):
        return object_type_label(value)

    def render_object(self, record):
        url = object_url(record.content_type, record.object_id, user=self.user)
        if url:
            return format_html('<a href="{}">{}</a>', url, record.object_label)
        return record.object_label

    def value_object(self, record):
        return record.object_label

    def render_message(self, record):
        return record.rendered()

    def value_message(self, record):
        return record.rendered()

    def render_changes(self, record):
        return _small_table(
            (_("Field"), _("Before"), _("After")),
            change_rows(record.changes, record.content_type),
            "changes",
        )

    def value_changes(self, record):
        return changes_text(record.changes, record.content_type)

    def render_details(self, value):
        return format_html(
            '<dl class="row mb-0 small" data-testid="details">{}</dl>',
            format_html_join(
                "",
                '<dt class="col-5 fw-normal text-body-secondary">{}</dt><dd class="col-7 mb-0">{}</dd>',
                detail_rows(value),
            ),
        )

    def value_details(self, value):
        return details_text(value)
