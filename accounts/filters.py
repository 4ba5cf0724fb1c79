import django_filters
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q
from django.utils.translation import gettext_lazy as _

from accounts.forms import ROLE_CHOICES
from accounts.models import Team
from calmail.common.filters import (
    CalmailFilterSet,
    DateRangeFilter,
    NumberRangeFilter,
    YesNoFilter,
)
from inventory.models import Language

NO_ROLE = "none"


class UserFilter(CalmailFilterSet):
    """One filter per column of the users list, plus a search."""

    q = django_filters.CharFilter(label=_("Search"), method="filter_search")
    name = django_filters.CharFilter(label=_("Name"), method="filter_name")
    username = django_filters.CharFilter(label=_("User name"), lookup_expr="icontains")
    email = django_filters.CharFilter(label=_("E-mail address"), lookup_expr="icontains")
    role = django_filters.ChoiceFilter(
        label=_("Role"),
        choices=[*ROLE_CHOICES, (NO_ROLE, _("no role"))],
        empty_label=_("any"),
        method="filter_role",
    )
    teams = django_filters.ModelChoiceFilter(
        label=_("Team"),
        queryset=Team.objects.order_by("name"),
        empty_label=_("any"),
        null_label=_("none"),
        method="filter_team",
    )
    language = django_filters.ChoiceFilter(
        label=_("Language"), choices=Language.choices, empty_label=_("any")
    )
    is_active = YesNoFilter(label=_("Active"))
    sign_in_locked = YesNoFilter(label=_("Sign-in locked"))
    last_login = DateRangeFilter(label=_("Last login"))
    date_joined = DateRangeFilter(label=_("Created"))

    class Meta:
        model = get_user_model()
        fields = []

    def filter_search(self, queryset, name, value):
        return queryset.filter(
            Q(username__icontains=value)
            | Q(first_name__icontains=value)
            | Q(last_name__icontains=value)
            | Q(email__icontains=value)
        )

    def filter_name(self, queryset, name, value):
        return queryset.filter(Q(first_name__icontains=value) | Q(last_name__icontains=value))

    def filter_role(self, queryset, name, value):
        return queryset.filter(role="" if value == NO_ROLE else value)

    def filter_team(self, queryset, name, value):
        memberships = get_user_model().groups.through.objects.filter(
            user=OuterRef("pk"), group__in=Team.objects.all()
        )
        if value is None:
            return queryset
        if value == "null":
            return queryset.exclude(Exists(memberships))
        return queryset.filter(Exists(memberships.filter(group=value)))


class TeamFilter(CalmailFilterSet):
    name = django_filters.CharFilter(label=_("Name"), lookup_expr="icontains")
    member = django_filters.CharFilter(label=_("Member"), method="filter_member")
    member_count = NumberRangeFilter(label=_("Members"))
    action_count = NumberRangeFilter(label=_("Actions"))
    template_count = NumberRangeFilter(label=_("Templates"))
    list_count = NumberRangeFilter(label=_("Distribution lists"))
    recent_mail_count = NumberRangeFilter(label=_("Mails (30 days)"))

    class Meta:
        model = Team
        fields = []

    def filter_member(self, queryset, name, value):
        members = (
            get_user_model()
            .groups.through.objects.filter(group=OuterRef("pk"))
            .filter(
                Q(user__username__icontains=value)
                | Q(user__first_name__icontains=value)
                | Q(user__last_name__icontains=value)
                | Q(user__email__icontains=value)
            )
        )
        return queryset.filter(Exists(members))
