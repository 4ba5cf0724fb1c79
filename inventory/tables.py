import django_tables2 as tables
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from calmail.common.tables import (
    CalmailTable,
    MenuItem,
    RowMenuColumn,
    SelectionColumn,
    YesNoColumn,
)
from inventory.models import Customer, DistributionList, Instrument, SystemAddress
from inventory.recipients import user_display_name
from inventory.selectors import DEFAULT_DUE_WINDOW_DAYS


def _menu(user, record, *, app_prefix: str, perm_model: str) -> list[MenuItem]:
    items = []
    if user.has_perm(f"inventory.change_{perm_model}"):
        items.append(
            MenuItem(
                _("Edit"), reverse(f"inventory:{app_prefix}_update", args=[record.pk]), "pencil"
            )
        )
    if user.has_perm(f"inventory.add_{perm_model}"):
        items.append(
            MenuItem(
                _("Duplicate"),
                reverse(f"inventory:{app_prefix}_duplicate", args=[record.pk]),
                "copy",
            )
        )
    if user.has_perm(f"inventory.delete_{perm_model}"):
        items.append(
            MenuItem(
                _("Delete"),
                reverse(f"inventory:{app_prefix}_delete", args=[record.pk]),
                "trash",
                danger=True,
            )
        )
    return items


class DistributionListTable(CalmailTable):
    selection = SelectionColumn()
    name = tables.Column(
        verbose_name=_("Name"),
        linkify=lambda record: reverse("inventory:distributionlist_detail", args=[record.pk]),
    )
    description = tables.Column(verbose_name=_("Description"))
    user_count = tables.Column(verbose_name=_("Users"), attrs={"td": {"class": "text-end"}})
    customer_count = tables.Column(verbose_name=_("Customers"), attrs={"td": {"class": "text-end"}})
    address_count = tables.Column(
        verbose_name=_("Further addresses"), attrs={"td": {"class": "text-end"}}
    )
    owner_group = tables.Column(verbose_name=_("Owner group"), order_by=("owner_group__name",))
    actions = RowMenuColumn()

    class Meta(CalmailTable.Meta):
        model = DistributionList
        fields = ()
        sequence = (
            "selection",
            "name",
            "description",
            "user_count",
            "customer_count",
            "address_count",
            "owner_group",
            "actions",
        )
        order_by = ("name",)

    def get_row_menu(self, record):
        return _menu(
            self.user, record, app_prefix="distributionlist", perm_model="distributionlist"
        )


class SystemAddressTable(CalmailTable):
    selection = SelectionColumn()
    name = tables.Column(verbose_name=_("Name"))
    email = tables.EmailColumn(verbose_name=_("E-mail address"))
    language = tables.Column(verbose_name=_("Language"))
    description = tables.Column(verbose_name=_("Description"))
    actions = RowMenuColumn()

    class Meta(CalmailTable.Meta):
        model = SystemAddress
        fields = ()
        sequence = ("selection", "name", "email", "language", "description", "actions")
        order_by = ("name",)

    def value_language(self, record):
        return record.get_language_display()

    def get_row_menu(self, record):
        return _menu(self.user, record, app_prefix="systemaddress", perm_model="systemaddress")


class CustomerTable(CalmailTable):
    number = tables.Column(verbose_name=_("Customer number"))
    name = tables.Column(verbose_name=_("Name"))
    language = tables.Column(verbose_name=_("Language"))
    city = tables.Column(verbose_name=_("City"))
    contacts = tables.Column(
        verbose_name=_("Contact addresses"), accessor="pk", orderable=False, empty_values=()
    )
    instrument_count = tables.Column(
        verbose_name=_("Instruments"), attrs={"td": {"class": "text-end"}}
    )
    is_active = YesNoColumn(verbose_name=_("Active"))

    class Meta(CalmailTable.Meta):
        model = Customer
        fields = ()
        sequence = (
            "number",
            "name",
            "language",
            "city",
            "contacts",
            "instrument_count",
            "is_active",
        )
        order_by = ("number",)

    def value_language(self, record):
        return record.get_language_display()

    def render_contacts(self, record):
        return ", ".join(contact.email for contact in record.contacts.all()) or "—"

    def value_contacts(self, record):
        return ", ".join(contact.email for contact in record.contacts.all())


class InstrumentTable(CalmailTable):
    default_columns = (
        "inventory_number",
        "description",
        "manufacturer",
        "model",
        "customer",
        "responsible",
        "next_due_date",
    )

    inventory_number = tables.Column(verbose_name=_("Inventory number"))
    description = tables.Column(verbose_name=_("Description"))
    manufacturer = tables.Column(verbose_name=_("Manufacturer"))
    model = tables.Column(verbose_name=_("Model"))
    serial_number = tables.Column(verbose_name=_("Serial number"))
    customer = tables.Column(verbose_name=_("Customer"), order_by=("customer__number",))
    location = tables.Column(verbose_name=_("Location"), order_by=("location__name",))
    responsible = tables.Column(
        verbose_name=_("Responsible"),
        order_by=("responsible__last_name", "responsible__first_name", "responsible__username"),
    )
    last_calibration = tables.Column(verbose_name=_("Last calibration"))
    calibration_interval_months = tables.Column(
        verbose_name=_("Interval (months)"), attrs={"td": {"class": "text-end"}}
    )
    next_due_date = tables.Column(verbose_name=_("Next calibration"))

    class Meta(CalmailTable.Meta):
        model = Instrument
        fields = ()
        sequence = (
            "inventory_number",
            "description",
            "manufacturer",
            "model",
            "serial_number",
            "customer",
            "location",
            "responsible",
            "last_calibration",
            "calibration_interval_months",
            "next_due_date",
        )
        order_by = ("next_due_date",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # One "today" per page, so every row is judged against the same date.
        self.today = timezone.localdate()

    def render_responsible(self, value):
        return user_display_name(value)

    def value_responsible(self, value):
        return user_display_name(value)

    def render_last_calibration(self, value):
        return date_format(value, "SHORT_DATE_FORMAT")

    def value_last_calibration(self, value):
        return value

    def render_next_due_date(self, value):
        text = date_format(value, "SHORT_DATE_FORMAT")
        days = (value - self.today).days
        if days < 0:
            return format_html(
                '{} <span class="badge text-bg-danger">{}</span>', text, _("overdue")
            )
        if days <= DEFAULT_DUE_WINDOW_DAYS:
            return format_html('{} <span class="badge text-bg-warning">{}</span>', text, _("due"))
        return text

    def value_next_due_date(self, value):
        return value
