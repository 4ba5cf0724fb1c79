import django_filters
from django.contrib.auth.models import Group
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from calmail.common.filters import CalmailFilterSet, NumberRangeFilter, YesNoFilter
from calmail.common.mailtypes import AttachmentType
from inventory.models import DueFilter
from inventory.selectors import owner_group_choices
from templates_app.models import AddAttachment, MailTemplate, TemplateExportType, TemplateType
from templates_app.reports import report_choices


def _owner_groups(request):
    if request is None:
        return Group.objects.none()
    return owner_group_choices(user=request.user)


def _reports():
    # Read from the registry on each request: providers may register after import.
    return [("none", _("no report"))] + [
        choice for _type, choices in report_choices() for choice in choices
    ]


class MailTemplateFilter(CalmailFilterSet):
    """One filter per column of the list (5.6.3), plus a free-text search."""

    q = django_filters.CharFilter(label=_("Search"), method="filter_search")
    name = django_filters.CharFilter(label=_("Name"), lookup_expr="icontains")
    add_attachment = django_filters.ChoiceFilter(
        label=_("Add attachment"), choices=AddAttachment.choices, empty_label=_("any")
    )
    template_type = django_filters.ChoiceFilter(
        label=_("Type"), choices=TemplateType.choices, empty_label=_("any")
    )
    description = django_filters.CharFilter(label=_("Description"), lookup_expr="icontains")
    empty_attachment_allowed = YesNoFilter(label=_("Empty attachment allowed"))
    due_filter = django_filters.ChoiceFilter(
        label=_("Filter"), choices=DueFilter.choices, empty_label=_("any")
    )
    due_window_days = NumberRangeFilter(label=_("Due window (days)"))
    report = django_filters.ChoiceFilter(
        label=_("Report name"), choices=_reports, empty_label=_("any"), method="filter_report"
    )
    from_email = django_filters.CharFilter(label=_("From"), lookup_expr="icontains")
    from_name = django_filters.CharFilter(label=_("From name"), lookup_expr="icontains")
    export_type = django_filters.ChoiceFilter(
        label=_("Export type"), choices=TemplateExportType.choices, empty_label=_("any")
    )
    attachment_type = django_filters.ChoiceFilter(
        label=_("Attachment type"), choices=AttachmentType.choices, empty_label=_("any")
    )
    owner_group = django_filters.ModelChoiceFilter(
        label=_("Owner group"), queryset=_owner_groups, empty_label=_("any"), null_label=_("none")
    )

    class Meta:
        model = MailTemplate
        fields = []

    def filter_search(self, queryset, name, value):
        return queryset.filter(
            Q(name__icontains=value)
            | Q(description__icontains=value)
            | Q(translations__subject__icontains=value)
        ).distinct()

    def filter_report(self, queryset, name, value):
        if value == "none":
            return queryset.filter(report="")
        return queryset.filter(report=value)
