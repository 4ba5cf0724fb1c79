import django_filters
from django.contrib.auth.models import Group
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from actions.forms import DAY_CHOICES, MONTH_CHOICES, WEEKDAY_CHOICES
from actions.models import Action
from actions.schedule import LAST
from calmail.common.filters import (
    CalmailFilterSet,
    DateRangeFilter,
    NumberRangeFilter,
    YesNoFilter,
)
from inventory.selectors import owner_group_choices
from smtpconfig.models import SmtpConfiguration
from templates_app.selectors import visible_templates


def _groups(request):
    if request is None:
        return Group.objects.none()
    return owner_group_choices(user=request.user)


def _templates(request):
    if request is None:
        return visible_templates(user=None).none()
    return visible_templates(user=request.user).order_by("name")


def _json_list_contains(name: str, value):
    # JSON list containment is not portable (SQLite lacks it); the lists are short and
    # stored compactly, so a text match on the element with its delimiters is exact.
    token = f'"{value}"' if value == LAST else str(value)
    return (
        Q(**{f"{name}__icontains": f"[{token}]"})
        | Q(**{f"{name}__icontains": f"[{token},"})
        | Q(**{f"{name}__icontains": f", {token},"})
        | Q(**{f"{name}__icontains": f", {token}]"})
        | Q(**{f"{name}__icontains": f",{token},"})
        | Q(**{f"{name}__icontains": f",{token}]"})
        | Q(**{name: []})
    )


class ActionFilter(CalmailFilterSet):
    """One filter per column of the list (5.6.1), plus a free-text search. A rule field
    filter finds the actions that fire on that value, "any" (empty) included."""

    q = django_filters.CharFilter(label=_("Search"), method="filter_search")
    description = django_filters.CharFilter(label=_("Description"), lookup_expr="icontains")
    day = django_filters.ChoiceFilter(
        label=_("Day of month"), choices=DAY_CHOICES, method="filter_days", empty_label=_("any")
    )
    weekday = django_filters.ChoiceFilter(
        label=_("Weekday"), choices=WEEKDAY_CHOICES, method="filter_weekdays", empty_label=_("any")
    )
    month = django_filters.ChoiceFilter(
        label=_("Month"), choices=MONTH_CHOICES, method="filter_months", empty_label=_("any")
    )
    start = DateRangeFilter(label=_("Start"))
    end = DateRangeFilter(label=_("End"))
    group = django_filters.ModelChoiceFilter(
        label=_("Group"), queryset=_groups, empty_label=_("any"), null_label=_("none")
    )
    published = YesNoFilter(label=_("Published"))
    send_without_attachments = YesNoFilter(label=_("Send without attachments"))
    sent_count = NumberRangeFilter(label=_("Sent"))
    template = django_filters.ModelChoiceFilter(
        label=_("Template"), queryset=_templates, empty_label=_("any")
    )
    smtp_configuration = django_filters.ModelChoiceFilter(
        label=_("SMTP configuration"),
        queryset=SmtpConfiguration.objects.order_by("name"),
        empty_label=_("any"),
    )
    next_due_at = DateRangeFilter(label=_("Next run"))

    class Meta:
        model = Action
        fields = []

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(description__icontains=value) | Q(template__name__icontains=value))

    def filter_days(self, queryset, name, value):
        parsed = value if value == LAST else int(value)
        return queryset.filter(_json_list_contains("days", parsed))

    def filter_weekdays(self, queryset, name, value):
        return queryset.filter(_json_list_contains("weekdays", int(value)))

    def filter_months(self, queryset, name, value):
        return queryset.filter(_json_list_contains("months", int(value)))
