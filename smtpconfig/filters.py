import django_filters
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from calmail.common.filters import CalmailFilterSet, NumberRangeFilter, YesNoFilter
from smtpconfig.models import Mailer, Security, SmtpConfiguration


class SmtpConfigurationFilter(CalmailFilterSet):
    """One filter per column of the list (5.6.4), plus a free-text search."""

    q = django_filters.CharFilter(label=_("Search"), method="filter_search")
    is_default = YesNoFilter(label=_("Default"))
    host = django_filters.CharFilter(label=_("Host"), lookup_expr="icontains")
    id = django_filters.NumberFilter(label=_("ID"))
    mailer = django_filters.ChoiceFilter(
        label=_("Mailer"), choices=Mailer.choices, empty_label=_("any")
    )
    name = django_filters.CharFilter(label=_("Name"), lookup_expr="icontains")
    has_password = YesNoFilter(label=_("Password set"), method="filter_has_password")
    port = NumberRangeFilter(label=_("Port"))
    sendmail_path = django_filters.CharFilter(label=_("Sendmail"), lookup_expr="icontains")
    smtp_auth = YesNoFilter(label=_("SMTP auth"))
    security = django_filters.ChoiceFilter(
        label=_("SMTP secure"), choices=Security.choices, empty_label=_("any")
    )
    timeout = NumberRangeFilter(label=_("Timeout (seconds)"))
    username = django_filters.CharFilter(label=_("Username"), lookup_expr="icontains")

    class Meta:
        model = SmtpConfiguration
        fields = []

    def filter_search(self, queryset, name, value):
        return queryset.filter(
            Q(name__icontains=value) | Q(host__icontains=value) | Q(username__icontains=value)
        )

    def filter_has_password(self, queryset, name, value):
        # The column holds ciphertext; only emptiness can be queried.
        return queryset.exclude(password="") if value else queryset.filter(password="")
