import json

import django_tables2 as tables
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from calmail.common.tables import CalmailTable, LocalDateTimeColumn
from maillog.links import object_url
from maillog.models import Level, LogEntry

LEVEL_BADGES = {
    Level.DEBUG: "text-bg-light border",
    Level.INFO: "text-bg-info",
    Level.WARNING: "text-bg-warning",
    Level.ERROR: "text-bg-danger",
}


def _json_text(value) -> str:
    if not value:
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def changes_text(changes) -> str:
    """`field: old → new; password: changed` for the page and exports."""
    parts = []
    for name, change in (changes or {}).items():
        if isinstance(change, list) and len(change) == 2:
            old, new = (json.dumps(v, ensure_ascii=False) for v in change)
            parts.append(f"{name}: {old} → {new}")
        else:
            parts.append(f"{name}: {_('changed') if change == 'changed' else change}")
    return "; ".join(parts)


def object_type_label(content_type) -> str:
    if content_type is None:
        return ""
    model = content_type.model_class()
    return str(model._meta.verbose_name if model else content_type.model).capitalize()


class LogEntryTable(CalmailTable):
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

    def render_changes(self, value):
        return changes_text(value)

    def value_changes(self, value):
        return changes_text(value)

    def render_details(self, value):
        return format_html("<code>{}</code>", _json_text(value))

    def value_details(self, value):
        return _json_text(value)
