"""The built-in reports over calmail's inventory app: one per template type at least.

Rows are read with values_list() in chunks: a report of tens of thousands of rows never
builds a model instance per row.
"""

import datetime

from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from inventory.selectors import (
    Scope,
    ScopeKind,
    filter_due,
    instruments_for_scope,
    locations_for_scope,
    tickets_for_scope,
)
from templates_app.reports.registry import (
    Column,
    ColumnKind,
    Report,
    TemplateType,
    get,
    register,
)

CHUNK_SIZE = 2000


def due_state(due: datetime.date | None, *, today: datetime.date, window_days: int) -> str:
    """ "overdue" before today, "due" up to the window's end, else nothing (5.6.3)."""
    if due is None:
        return ""
    if due < today:
        return _("overdue")
    if due <= today + datetime.timedelta(days=window_days):
        return _("due")
    return ""


def _person(first_name: str | None, last_name: str | None, username: str | None) -> str:
    full = f"{first_name or ''} {last_name or ''}".strip()
    return full or (username or "")


def _customer(number: str | None, name: str | None) -> str:
    return f"{number} · {name}" if number else ""


class InstrumentsDueReport(Report):
    """INVENTORY: instruments with their calibration due dates, soonest first."""

    key = "instruments_due"
    template_type = TemplateType.INVENTORY
    title = gettext_lazy("Instruments due for calibration")
    description = gettext_lazy(
        "The recipient's instruments with last and next calibration, soonest due first."
    )
    columns = (
        Column("inventory_number", gettext_lazy("Inventory number"), width=14),
        Column("description", gettext_lazy("Description"), width=28),
        Column("manufacturer", gettext_lazy("Manufacturer"), width=14),
        Column("model", gettext_lazy("Model"), width=12),
        Column("serial_number", gettext_lazy("Serial number"), width=14),
        Column("customer", gettext_lazy("Customer"), width=26),
        Column("location", gettext_lazy("Location"), width=18),
        Column("last_calibration", gettext_lazy("Last calibration"), ColumnKind.DATE, 12),
        Column("next_due_date", gettext_lazy("Next calibration"), ColumnKind.DATE, 12),
        Column("due_state", gettext_lazy("Status"), width=10),
    )

    def build_rows(self, *, scope, due_filter, window_days, today):
        queryset = filter_due(
            instruments_for_scope(scope=scope),
            field="next_due_date",
            due_filter=due_filter,
            today=today,
            window_days=window_days,
        ).order_by(F("next_due_date").asc(nulls_last=True), "inventory_number")
        values = queryset.values_list(
            "inventory_number",
            "description",
            "manufacturer",
            "model",
            "serial_number",
            "customer__number",
            "customer__name",
            "location__name",
            "last_calibration",
            "next_due_date",
        )
        for (
            number,
            description,
            manufacturer,
            model,
            serial,
            customer_number,
            customer_name,
            location,
            last_calibration,
            next_due,
        ) in values.iterator(chunk_size=CHUNK_SIZE):
            yield {
                "inventory_number": number,
                "description": description,
                "manufacturer": manufacturer,
                "model": model,
                "serial_number": serial,
                "customer": _customer(customer_number, customer_name),
                "location": location or "",
                "last_calibration": last_calibration,
                "next_due_date": next_due,
                "due_state": due_state(next_due, today=today, window_days=window_days),
            }


class InstrumentsByLocationReport(Report):
    """LOCATION: instruments grouped by location (sorted by it; the location is the first
    column, so a template can {% regroup rows by location as groups %})."""

    key = "instruments_by_location"
    template_type = TemplateType.LOCATION
    title = gettext_lazy("Instruments by location")
    description = gettext_lazy(
        "Instruments grouped by location. For a user: the locations they are responsible for."
    )
    columns = (
        Column("location", gettext_lazy("Location"), width=20),
        Column("location_city", gettext_lazy("City"), width=14),
        Column("location_responsible", gettext_lazy("Responsible"), width=18),
        Column("customer", gettext_lazy("Customer"), width=26),
        Column("inventory_number", gettext_lazy("Inventory number"), width=14),
        Column("description", gettext_lazy("Description"), width=28),
        Column("serial_number", gettext_lazy("Serial number"), width=14),
        Column("next_due_date", gettext_lazy("Next calibration"), ColumnKind.DATE, 12),
        Column("due_state", gettext_lazy("Status"), width=10),
    )

    def build_rows(self, *, scope, due_filter, window_days, today):
        if scope.kind == ScopeKind.USER:
            # A user's records here are the instruments at the locations they look after.
            instruments = instruments_for_scope(scope=Scope.all()).filter(
                location__in=locations_for_scope(scope=scope).values("pk")
            )
        else:
            instruments = instruments_for_scope(scope=scope)
        queryset = filter_due(
            instruments,
            field="next_due_date",
            due_filter=due_filter,
            today=today,
            window_days=window_days,
        ).order_by(
            F("location__name").asc(nulls_last=True),
            "location_id",
            F("next_due_date").asc(nulls_last=True),
            "inventory_number",
        )
        values = queryset.values_list(
            "location__name",
            "location__city",
            "location__responsible__first_name",
            "location__responsible__last_name",
            "location__responsible__username",
            "customer__number",
            "customer__name",
            "inventory_number",
            "description",
            "serial_number",
            "next_due_date",
        )
        no_location = _("(no location)")
        for (
            location,
            city,
            first_name,
            last_name,
            username,
            customer_number,
            customer_name,
            number,
            description,
            serial,
            next_due,
        ) in values.iterator(chunk_size=CHUNK_SIZE):
            yield {
                "location": location or no_location,
                "location_city": city or "",
                "location_responsible": _person(first_name, last_name, username),
                "customer": _customer(customer_number, customer_name),
                "inventory_number": number,
                "description": description,
                "serial_number": serial,
                "next_due_date": next_due,
                "due_state": due_state(next_due, today=today, window_days=window_days),
            }


class OpenTicketsReport(Report):
    """SUPPORT: open support tickets by due date."""

    key = "open_tickets"
    template_type = TemplateType.SUPPORT
    title = gettext_lazy("Open support tickets")
    description = gettext_lazy("Open tickets of the recipient, soonest due first.")
    columns = (
        Column("number", gettext_lazy("Ticket number"), width=12),
        Column("subject", gettext_lazy("Subject"), width=36),
        Column("customer", gettext_lazy("Customer"), width=26),
        Column("assignee", gettext_lazy("Assignee"), width=18),
        Column("created", gettext_lazy("Created"), ColumnKind.DATE, 12),
        Column("due_date", gettext_lazy("Due date"), ColumnKind.DATE, 12),
        Column("due_state", gettext_lazy("Status"), width=10),
    )

    def build_rows(self, *, scope, due_filter, window_days, today):
        queryset = filter_due(
            tickets_for_scope(scope=scope),
            field="due_date",
            due_filter=due_filter,
            today=today,
            window_days=window_days,
        ).order_by(F("due_date").asc(nulls_last=True), "number")
        values = queryset.values_list(
            "number",
            "subject",
            "customer__number",
            "customer__name",
            "assignee__first_name",
            "assignee__last_name",
            "assignee__username",
            "created_at",
            "due_date",
        )
        for (
            number,
            subject,
            customer_number,
            customer_name,
            first_name,
            last_name,
            username,
            created_at,
            due_date,
        ) in values.iterator(chunk_size=CHUNK_SIZE):
            yield {
                "number": number,
                "subject": subject,
                "customer": _customer(customer_number, customer_name),
                "assignee": _person(first_name, last_name, username),
                "created": _local_date(created_at),
                "due_date": due_date,
                "due_state": due_state(due_date, today=today, window_days=window_days),
            }


def _local_date(value: datetime.datetime | None) -> datetime.date | None:
    if value is None:
        return None
    return timezone.localdate(value) if timezone.is_aware(value) else value.date()


DEFAULT_REPORTS = (InstrumentsDueReport, InstrumentsByLocationReport, OpenTicketsReport)


def register_defaults() -> None:
    """Register the built-in reports (idempotent: AppConfig.ready may run more than once)."""
    for report_class in DEFAULT_REPORTS:
        try:
            get(report_class.key)
        except KeyError:
            register(report_class())
