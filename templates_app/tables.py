import django_tables2 as tables
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from calmail.common.tables import (
    CalmailTable,
    MenuItem,
    RowMenuColumn,
    SelectionColumn,
    YesNoColumn,
)
from inventory.models import DueFilter
from templates_app.models import MailTemplate
from templates_app.selectors import TemplateRights


class MailTemplateTable(CalmailTable):
    """The 10 columns of 5.6.3, plus export type, attachment type and owner group."""

    default_columns = (
        "name",
        "template_type",
        "description",
        "due_filter",
        "report",
        "from_email",
        "export_type",
        "owner_group",
    )
    filter_columns = {"due_window_days": "due_filter"}

    selection = SelectionColumn()
    name = tables.Column(
        verbose_name=_("Name"),
        linkify=lambda record: reverse("templates_app:preview", args=[record.pk]),
    )
    add_attachment = tables.Column(verbose_name=_("Add attachment"))
    template_type = tables.Column(verbose_name=_("Type"))
    description = tables.Column(verbose_name=_("Description"))
    empty_attachment_allowed = YesNoColumn(verbose_name=_("Empty attachment allowed"))
    due_filter = tables.Column(verbose_name=_("Filter"), order_by=("due_filter", "due_window_days"))
    report = tables.Column(verbose_name=_("Report name"))
    from_email = tables.Column(verbose_name=_("From"))
    from_name = tables.Column(verbose_name=_("From name"))
    export_type = tables.Column(verbose_name=_("Export type"))
    attachment_type = tables.Column(verbose_name=_("Attachment type"))
    owner_group = tables.Column(verbose_name=_("Owner group"), order_by=("owner_group__name",))
    actions = RowMenuColumn()

    class Meta(CalmailTable.Meta):
        model = MailTemplate
        fields = ()
        sequence = (
            "selection",
            "name",
            "add_attachment",
            "template_type",
            "description",
            "empty_attachment_allowed",
            "due_filter",
            "report",
            "from_email",
            "from_name",
            "export_type",
            "attachment_type",
            "owner_group",
            "actions",
        )
        order_by = ("name",)

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        # Rights are worked out once for the page, not per row.
        self.rights = TemplateRights(user) if user is not None else None

    def render_due_filter(self, record):
        return self.value_due_filter(record)

    def value_due_filter(self, record):
        label = record.get_due_filter_display()
        if record.due_filter in (DueFilter.DUE, DueFilter.DUE_OVERDUE):
            return _("%(filter)s (%(days)s days)") % {
                "filter": label,
                "days": record.due_window_days,
            }
        return label

    def render_report(self, record):
        return record.report_label

    def value_report(self, record):
        return record.report_label

    def value_add_attachment(self, record):
        return record.get_add_attachment_display()

    def value_template_type(self, record):
        return record.get_template_type_display()

    def value_export_type(self, record):
        return record.get_export_type_display()

    def value_attachment_type(self, record):
        return record.get_attachment_type_display()

    def get_row_menu(self, record):
        rights = self.rights
        if rights is None:
            return []
        items = []
        if rights.can_change(record):
            items.append(
                MenuItem(_("Edit"), reverse("templates_app:update", args=[record.pk]), "pencil")
            )
        if rights.can_add():
            items.append(
                MenuItem(
                    _("Duplicate"), reverse("templates_app:duplicate", args=[record.pk]), "copy"
                )
            )
        items.append(
            MenuItem(_("Preview"), reverse("templates_app:preview", args=[record.pk]), "eye")
        )
        if rights.can_delete(record):
            items.append(
                MenuItem(
                    _("Delete"),
                    reverse("templates_app:delete", args=[record.pk]),
                    "trash",
                    danger=True,
                )
            )
        return items
