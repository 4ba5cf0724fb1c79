import datetime

import django_filters
from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from calmail.common.filters import (
    CalmailFilterSet,
    DateRangeFilter,
    NumberRangeFilter,
    YesNoFilter,
)
from inventory.models import (
    Customer,
    CustomerContact,
    DistributionList,
    DistributionListAddress,
    DueFilter,
    Instrument,
    Language,
    SystemAddress,
)
from inventory.selectors import active_users, filter_due, owner_group_choices


def _owner_groups(request):
    # Only groups the user could see lists of; an outsider's filter offers nothing.
    if request is None:
        return Group.objects.none()
    return owner_group_choices(user=request.user)


class DistributionListFilter(CalmailFilterSet):
    """One filter per column of the list, plus a search and a member filter."""

    q = django_filters.CharFilter(label=_("Search"), method="filter_search")
    name = django_filters.CharFilter(label=_("Name"), lookup_expr="icontains")
    description = django_filters.CharFilter(label=_("Description"), lookup_expr="icontains")
    user_count = NumberRangeFilter(label=_("Users"))
    customer_count = NumberRangeFilter(label=_("Customers"))
    address_count = NumberRangeFilter(label=_("Further addresses"))
    owner_group = django_filters.ModelChoiceFilter(
        label=_("Owner group"),
        queryset=_owner_groups,
        empty_label=_("any"),
        null_label=_("none"),
    )
    member = django_filters.CharFilter(label=_("Member"), method="filter_member")

    class Meta:
        model = DistributionList
        fields = []

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))

    def filter_member(self, queryset, name, value):
        """Lists with a user, customer or typed address matching the text."""
        users = DistributionList.users.through.objects.filter(
            distributionlist=OuterRef("pk")
        ).filter(
            Q(user__username__icontains=value)
            | Q(user__first_name__icontains=value)
            | Q(user__last_name__icontains=value)
            | Q(user__email__icontains=value)
        )
        customers = DistributionList.customers.through.objects.filter(
            distributionlist=OuterRef("pk")
        ).filter(
            Q(customer__number__icontains=value)
            | Q(customer__name__icontains=value)
            | Q(customer__contacts__email__icontains=value)
        )
        addresses = DistributionListAddress.objects.filter(distribution_list=OuterRef("pk")).filter(
            Q(email__icontains=value) | Q(name__icontains=value)
        )
        return queryset.filter(Exists(users) | Exists(customers) | Exists(addresses))


class SystemAddressFilter(CalmailFilterSet):
    q = django_filters.CharFilter(label=_("Search"), method="filter_search")
    name = django_filters.CharFilter(label=_("Name"), lookup_expr="icontains")
    email = django_filters.CharFilter(label=_("E-mail address"), lookup_expr="icontains")
    language = django_filters.ChoiceFilter(
        label=_("Language"), choices=Language.choices, empty_label=_("any")
    )
    description = django_filters.CharFilter(label=_("Description"), lookup_expr="icontains")

    class Meta:
        model = SystemAddress
        fields = []

    def filter_search(self, queryset, name, value):
        return queryset.filter(
            Q(name__icontains=value) | Q(email__icontains=value) | Q(description__icontains=value)
        )


class CustomerFilter(CalmailFilterSet):
    q = django_filters.CharFilter(label=_("Search"), method="filter_search")
    number = django_filters.CharFilter(label=_("Customer number"), lookup_expr="icontains")
    name = django_filters.CharFilter(label=_("Name"), lookup_expr="icontains")
    language = django_filters.ChoiceFilter(
        label=_("Language"), choices=Language.choices, empty_label=_("any")
    )
    city = django_filters.CharFilter(label=_("City"), lookup_expr="icontains")
    contacts = django_filters.CharFilter(label=_("Contact addresses"), method="filter_contacts")
    instrument_count = NumberRangeFilter(label=_("Instruments"))
    is_active = YesNoFilter(label=_("Active"))

    class Meta:
        model = Customer
        fields = []

    def filter_search(self, queryset, name, value):
        return queryset.filter(
            Q(number__icontains=value) | Q(name__icontains=value) | Q(city__icontains=value)
        )

    def filter_contacts(self, queryset, name, value):
        return queryset.filter(
            Exists(CustomerContact.objects.filter(customer=OuterRef("pk"), email__icontains=value))
        )


DUE_STATE_CHOICES = [
    (DueFilter.OVERDUE, _("overdue")),
    (DueFilter.DUE, _("due within 30 days")),
    (DueFilter.DUE_OVERDUE, _("overdue or due within 30 days")),
]


class InstrumentFilter(CalmailFilterSet):
    q = django_filters.CharFilter(label=_("Search"), method="filter_search")
    inventory_number = django_filters.CharFilter(
        label=_("Inventory number"), lookup_expr="icontains"
    )
    description = django_filters.CharFilter(label=_("Description"), lookup_expr="icontains")
    manufacturer = django_filters.CharFilter(label=_("Manufacturer"), lookup_expr="icontains")
    model = django_filters.CharFilter(label=_("Model"), lookup_expr="icontains")
    serial_number = django_filters.CharFilter(label=_("Serial number"), lookup_expr="icontains")
    customer = django_filters.CharFilter(
        label=_("Customer"),
        method="filter_customer",
        help_text=_("Customer number or name"),
    )
    location = django_filters.CharFilter(
        label=_("Location"), field_name="location__name", lookup_expr="icontains"
    )
    responsible = django_filters.ModelChoiceFilter(
        label=_("Responsible"),
        queryset=lambda request: active_users().order_by("last_name", "first_name", "username"),
        empty_label=_("any"),
        null_label=_("nobody"),
    )
    last_calibration = DateRangeFilter(label=_("Last calibration"))
    calibration_interval_months = NumberRangeFilter(label=_("Interval (months)"))
    next_due_date = DateRangeFilter(label=_("Next calibration"))
    due_state = django_filters.ChoiceFilter(
        label=_("Due"), choices=DUE_STATE_CHOICES, empty_label=_("any"), method="filter_due_state"
    )

    class Meta:
        model = Instrument
        fields = []

    def filter_search(self, queryset, name, value):
        return queryset.filter(
            Q(inventory_number__icontains=value)
            | Q(description__icontains=value)
            | Q(manufacturer__icontains=value)
            | Q(model__icontains=value)
            | Q(serial_number__icontains=value)
        )

    def filter_customer(self, queryset, name, value):
        return queryset.filter(
            Q(customer__number__icontains=value) | Q(customer__name__icontains=value)
        )

    def filter_due_state(self, queryset, name, value):
        today: datetime.date = timezone.localdate()
        return filter_due(queryset, field="next_due_date", due_filter=value, today=today)
