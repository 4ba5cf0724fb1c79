"""The built-in reports over calmail's inventory app: one per template type at least.

Rows are read with values_list() in chunks: a report of tens of thousands of rows never
builds a model instance per row. For a fan-out, build_rows_many() reads the rows of many
customers (or users) with one query, ordered by the customer and then as build_rows()
orders them, and splits them by customer.
"""

import collections
import datetime
import itertools
import operator
from collections.abc import Sequence

from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from inventory.selectors import (
    OWNER_LOOKUPS,
    RecordKind,
    Scope,
    ScopeKind,
    count_matching_records,
    matching_records,
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
# build_rows_many() stops taking further scopes once it holds this many rows (those left
# are built one by one): a chunk of large customers does not sit in memory at once.
MAX_ROWS_AHEAD = 20_000


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


class _QueryReport(Report):
    """A report read with one values_list() query: build_rows() for one scope,
    build_rows_many() for many scopes of a kind at once.

    Subclasses give the ordered queryset of a scope (queryset()), the columns read
    (VALUES), how a row of them becomes the report's row (row_maker()), and per kind of
    scope the lookup that narrows the queryset of Scope.all() to exactly the queryset of
    one scope of that kind (SCOPE_LOOKUPS, as inventory.selectors narrows it).
    """

    VALUES: tuple[str, ...] = ()
    SCOPE_LOOKUPS: dict[ScopeKind, str] = {}

    def queryset(
        self, *, scope: Scope, due_filter: str, window_days: int, today: datetime.date
    ) -> QuerySet:
        raise NotImplementedError

    def row_maker(self, *, window_days: int, today: datetime.date):
        """A function from a tuple of VALUES to the row dict (in the active language)."""
        raise NotImplementedError

    def build_rows(self, *, scope, due_filter, window_days, today):
        if scope.kind == ScopeKind.NONE:
            return
        values = self.queryset(
            scope=scope, due_filter=due_filter, window_days=window_days, today=today
        ).values_list(*self.VALUES)
        make = self.row_maker(window_days=window_days, today=today)
        for record in values.iterator(chunk_size=CHUNK_SIZE):
            yield make(record)

    def count_rows_many(
        self,
        *,
        scopes: Sequence[Scope],
        due_filter: str,
        window_days: int,
        today: datetime.date,
    ) -> dict[Scope, int]:
        """One COUNT query per kind of scope, grouped by owner, when the rows are the
        kind's matching records (inventory.selectors.matching_records); else one per scope."""
        if self.records is not None and type(self).build_rows is _QueryReport.build_rows:
            return count_matching_records(
                kind=self.records,
                scopes=scopes,
                due_filter=due_filter,
                window_days=window_days,
                today=today,
            )
        if type(self).build_rows is not _QueryReport.build_rows:
            return super().count_rows_many(
                scopes=scopes, due_filter=due_filter, window_days=window_days, today=today
            )
        return {
            scope: self.queryset(
                scope=scope, due_filter=due_filter, window_days=window_days, today=today
            )
            .order_by()
            .count()
            for scope in dict.fromkeys(scopes)
        }

    def build_rows_many(
        self,
        *,
        scopes: Sequence[Scope],
        due_filter: str,
        window_days: int,
        today: datetime.date,
    ) -> dict[Scope, list[dict]]:
        """One query per kind of scope with a lookup (customers, users). A scope of
        another kind (all, chosen customers) is built ahead only when it occurs more than
        once, so its recipients share one report. Left out (build() makes them one by one): a kind
        with a single scope, a scope of another kind that occurs once, and those past
        MAX_ROWS_AHEAD rows."""
        if type(self).build_rows is not _QueryReport.build_rows:
            # A subclass that makes its rows otherwise: build_rows() is the truth.
            return super().build_rows_many(
                scopes=scopes, due_filter=due_filter, window_days=window_days, today=today
            )
        occurrences = collections.Counter(scopes)
        by_kind: dict[ScopeKind, list[Scope]] = {}
        for scope in occurrences:
            by_kind.setdefault(scope.kind, []).append(scope)
        rows: dict[Scope, list[dict]] = {}
        for kind, group in by_kind.items():
            if kind in self.SCOPE_LOOKUPS and len(group) > 1:
                rows.update(
                    self._rows_of_kind(
                        kind,
                        group,
                        due_filter=due_filter,
                        window_days=window_days,
                        today=today,
                        budget=MAX_ROWS_AHEAD,
                    )
                )
            elif kind == ScopeKind.NONE:
                rows.update({scope: [] for scope in group})
            elif kind not in self.SCOPE_LOOKUPS:
                # All, or chosen customers: a scope shared by several recipients.
                for scope in group:
                    if occurrences[scope] > 1:
                        rows[scope] = list(
                            self.build_rows(
                                scope=scope,
                                due_filter=due_filter,
                                window_days=window_days,
                                today=today,
                            )
                        )
        return rows

    def _rows_of_kind(
        self,
        kind: ScopeKind,
        scopes: list[Scope],
        *,
        due_filter: str,
        window_days: int,
        today: datetime.date,
        budget: int,
    ) -> dict[Scope, list[dict]]:
        lookup = self.SCOPE_LOOKUPS[kind]
        by_id = {scope.id: scope for scope in scopes if scope.id is not None}
        queryset = self.queryset(
            scope=Scope.all(), due_filter=due_filter, window_days=window_days, today=today
        ).filter(**{f"{lookup}__in": list(by_id)})
        # By the scope first, then in the report's own order: each scope's rows come
        # together and in the order build_rows() gives them.
        queryset = queryset.order_by(lookup, *queryset.query.order_by)
        make = self.row_maker(window_days=window_days, today=today)
        records = queryset.values_list(lookup, *self.VALUES).iterator(chunk_size=CHUNK_SIZE)
        rows: dict[Scope, list[dict]] = {}
        held = 0
        stopped_at: int | None = None
        try:
            for scope_id, group in itertools.groupby(records, key=operator.itemgetter(0)):
                if held >= budget:
                    # This scope and those after it wait for build().
                    stopped_at = scope_id
                    break
                built = rows[by_id[scope_id]] = [make(record[1:]) for record in group]
                held += len(built)
        finally:
            # A generator: closing it closes the database cursor when reading stopped early.
            close = getattr(records, "close", None)
            if close is not None:
                close()
        # Scopes without rows: every other one when all rows were read, else those before
        # the scope the reading stopped at.
        for scope_id, scope in by_id.items():
            if scope not in rows and (stopped_at is None or scope_id < stopped_at):
                rows[scope] = []
        return rows


class InstrumentsDueReport(_QueryReport):
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

    VALUES = (
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
    # A customer's instruments, those a user is responsible for.
    records = RecordKind.INSTRUMENTS
    SCOPE_LOOKUPS = OWNER_LOOKUPS[RecordKind.INSTRUMENTS]

    def queryset(self, *, scope, due_filter, window_days, today):
        return matching_records(
            kind=self.records,
            scope=scope,
            due_filter=due_filter,
            window_days=window_days,
            today=today,
        ).order_by(F("next_due_date").asc(nulls_last=True), "inventory_number")

    def row_maker(self, *, window_days, today):
        def make(record) -> dict:
            (
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
            ) = record
            return {
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

        return make


class InstrumentsByLocationReport(_QueryReport):
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

    VALUES = (
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
    # A customer's instruments; a user's: those at the locations the user looks after,
    # that is the instruments whose location is theirs.
    records = RecordKind.LOCATIONS
    SCOPE_LOOKUPS = OWNER_LOOKUPS[RecordKind.LOCATIONS]

    def queryset(self, *, scope, due_filter, window_days, today):
        return matching_records(
            kind=self.records,
            scope=scope,
            due_filter=due_filter,
            window_days=window_days,
            today=today,
        ).order_by(
            F("location__name").asc(nulls_last=True),
            "location_id",
            F("next_due_date").asc(nulls_last=True),
            "inventory_number",
        )

    def row_maker(self, *, window_days, today):
        no_location = _("(no location)")

        def make(record) -> dict:
            (
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
            ) = record
            return {
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

        return make


class OpenTicketsReport(_QueryReport):
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

    VALUES = (
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
    # A customer's open tickets, those assigned to a user.
    records = RecordKind.TICKETS
    SCOPE_LOOKUPS = OWNER_LOOKUPS[RecordKind.TICKETS]

    def queryset(self, *, scope, due_filter, window_days, today):
        return matching_records(
            kind=self.records,
            scope=scope,
            due_filter=due_filter,
            window_days=window_days,
            today=today,
        ).order_by(F("due_date").asc(nulls_last=True), "number")

    def row_maker(self, *, window_days, today):
        def make(record) -> dict:
            (
                number,
                subject,
                customer_number,
                customer_name,
                first_name,
                last_name,
                username,
                created_at,
                due_date,
            ) = record
            return {
                "number": number,
                "subject": subject,
                "customer": _customer(customer_number, customer_name),
                "assignee": _person(first_name, last_name, username),
                "created": _local_date(created_at),
                "due_date": due_date,
                "due_state": due_state(due_date, today=today, window_days=window_days),
            }

        return make


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
