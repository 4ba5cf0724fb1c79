"""Reads of calServer data: list pages, visibility, and the rows a report takes per scope.

Reports select rows by a recipient's scope (inventory.recipients.Scope): a customer's
records, chosen customers' records, the records a user is responsible for, all, or none
(no report). Each of those is one indexed range scan: instruments by (customer,
next_due_date), (responsible, next_due_date) or (next_due_date); tickets by (customer,
due_date), (assignee, due_date), (status, due_date).
"""

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group, User
from django.db.models import Count, Model, Q, QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from calmail.common.queries import related_count
from calmail.common.roles import ROLE_NAMES, is_administrator, team_groups
from inventory.models import (
    Customer,
    DistributionList,
    DistributionListAddress,
    DueFilter,
    Instrument,
    Location,
    SupportTicket,
    SystemAddress,
    TicketStatus,
)

DEFAULT_DUE_WINDOW_DAYS = 30

_M = TypeVar("_M", bound=Model)


class ScopeKind(StrEnum):
    CUSTOMER = "customer"
    # Chosen customers, for a recipient that belongs to none (an action's report scope).
    CUSTOMERS = "customers"
    USER = "user"
    # All customers: internal addresses only (see actions.services.report_scope_refusal).
    ALL = "all"
    # No report: the recipient gets no rows and no report attachment.
    NONE = "none"


_SCOPE_WITH_ID = (ScopeKind.CUSTOMER, ScopeKind.USER)


@dataclass(frozen=True)
class Scope:
    """Which rows a recipient's report covers: one customer's, chosen customers', one
    user's, all, or none.

    str() gives a stable text ("customer:5", "customers:1,2,3", "user:12", "all", "none")
    to store, parse() reads it. The ids of CUSTOMERS are kept sorted and unique, so equal
    choices are equal scopes (a fan-out builds their report once).
    """

    kind: ScopeKind
    id: int | None = None
    ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if (self.kind in _SCOPE_WITH_ID) != (self.id is not None):
            raise ValueError(f"Scope {self.kind} needs {'no' if self.id else 'an'} id")
        if (self.kind == ScopeKind.CUSTOMERS) != bool(self.ids):
            raise ValueError(f"Scope {self.kind} needs {'' if self.ids else 'no '}ids")
        object.__setattr__(self, "ids", tuple(sorted({int(pk) for pk in self.ids})))

    def __str__(self) -> str:
        if self.kind == ScopeKind.CUSTOMERS:
            return f"{self.kind}:{','.join(str(pk) for pk in self.ids)}"
        return str(self.kind) if self.id is None else f"{self.kind}:{self.id}"

    @classmethod
    def customer(cls, pk: int) -> "Scope":
        return cls(ScopeKind.CUSTOMER, int(pk))

    @classmethod
    def customers(cls, pks: Iterable[int]) -> "Scope":
        return cls(ScopeKind.CUSTOMERS, ids=tuple(int(pk) for pk in pks))

    @classmethod
    def user(cls, pk: int) -> "Scope":
        return cls(ScopeKind.USER, int(pk))

    @classmethod
    def all(cls) -> "Scope":
        """All customers' records (internal addresses only)."""
        return cls(ScopeKind.ALL)

    @classmethod
    def none(cls) -> "Scope":
        """No report."""
        return cls(ScopeKind.NONE)

    @classmethod
    def parse(cls, text: str) -> "Scope":
        kind, _sep, rest = text.partition(":")
        try:
            if kind == ScopeKind.CUSTOMERS:
                return cls.customers(int(pk) for pk in rest.split(","))
            return cls(ScopeKind(kind), int(rest) if rest else None)
        except ValueError:
            raise ValueError(f"Not a scope: {text!r}") from None


def scope_labels(scopes: Iterable[Scope]) -> dict[Scope, str]:
    """What each scope's report covers, in words of the active language ("no report",
    "all customers (internal)", "chosen customers: 1001 · Muster GmbH, …"). One query
    for the customers of all CUSTOMERS scopes together, none without them."""
    scopes = set(scopes)
    wanted = {pk for scope in scopes for pk in scope.ids}
    names = (
        {customer.pk: customer.label for customer in Customer.objects.filter(pk__in=wanted)}
        if wanted
        else {}
    )
    labels = {}
    for scope in scopes:
        if scope.kind == ScopeKind.CUSTOMERS:
            shown = [names.get(pk, f"#{pk}") for pk in scope.ids]
            if len(shown) > MAX_LABELLED_CUSTOMERS:
                shown = [*shown[:MAX_LABELLED_CUSTOMERS], "…"]
            labels[scope] = _("chosen customers: %(customers)s") % {"customers": ", ".join(shown)}
        else:
            labels[scope] = str(SCOPE_KIND_LABELS[scope.kind])
    return labels


MAX_LABELLED_CUSTOMERS = 10
SCOPE_KIND_LABELS = {
    ScopeKind.CUSTOMER: gettext_lazy("the customer's records"),
    ScopeKind.CUSTOMERS: gettext_lazy("chosen customers"),
    ScopeKind.USER: gettext_lazy("the user's records"),
    ScopeKind.ALL: gettext_lazy("all customers (internal)"),
    ScopeKind.NONE: gettext_lazy("no report"),
}


def distribution_lists_with_addresses(pks: Iterable[int]) -> list[DistributionList]:
    """Of the given lists, those with extra addresses (members that belong to no customer
    or user), by name."""
    return list(
        DistributionList.objects.filter(pk__in=list(pks), addresses__isnull=False)
        .distinct()
        .order_by("name", "pk")
    )


# --- visibility ---------------------------------------------------------------------------


def has_role(user: User | AnonymousUser) -> bool:
    """Logged in with one of the three roles (or a superuser)."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name__in=ROLE_NAMES).exists()


def visible_distribution_lists(*, user: User | AnonymousUser) -> QuerySet[DistributionList]:
    """Lists the user may see: with the view permission, those without an owner group and
    those of the user's groups; administrators see all."""
    if not user.has_perm("inventory.view_distributionlist"):
        return DistributionList.objects.none()
    if is_administrator(user):
        return DistributionList.objects.all()
    return DistributionList.objects.filter(
        Q(owner_group__isnull=True) | Q(owner_group__in=user.groups.all())
    )


def owner_group_choices(*, user: User | AnonymousUser) -> QuerySet[Group]:
    """Groups a user may make a distribution list's owner: teams, never roles.
    Administrators choose any team; others one of their own."""
    if is_administrator(user):
        return Group.objects.exclude(name__in=ROLE_NAMES).order_by("name")
    return team_groups(user).order_by("name")


# --- list pages ---------------------------------------------------------------------------


def distribution_list_list(*, user: User | AnonymousUser) -> QuerySet[DistributionList]:
    """Visible lists with their member counts (user_count, customer_count, address_count)."""
    return (
        visible_distribution_lists(user=user)
        .select_related("owner_group")
        .annotate(
            user_count=related_count(DistributionList.users.through, "distributionlist"),
            customer_count=related_count(DistributionList.customers.through, "distributionlist"),
            address_count=related_count(DistributionListAddress, "distribution_list"),
        )
    )


def distribution_list_detail(*, user: User | AnonymousUser, pk: int) -> DistributionList:
    """One visible list with its members loaded (raises DoesNotExist otherwise)."""
    return (
        visible_distribution_lists(user=user)
        .select_related("owner_group")
        .prefetch_related("users", "customers__contacts", "addresses")
        .get(pk=pk)
    )


def system_address_list(*, user: User | AnonymousUser) -> QuerySet[SystemAddress]:
    if not user.has_perm("inventory.view_systemaddress"):
        return SystemAddress.objects.none()
    return SystemAddress.objects.all()


def customer_list(*, user: User | AnonymousUser) -> QuerySet[Customer]:
    if not user.has_perm("inventory.view_customer"):
        return Customer.objects.none()
    return Customer.objects.prefetch_related("contacts").annotate(
        instrument_count=related_count(Instrument, "customer")
    )


def instrument_list(*, user: User | AnonymousUser) -> QuerySet[Instrument]:
    if not user.has_perm("inventory.view_instrument"):
        return Instrument.objects.none()
    return Instrument.objects.select_related("customer", "location", "responsible")


def active_users() -> QuerySet[User]:
    return get_user_model().objects.filter(is_active=True)


# --- reports ------------------------------------------------------------------------------


def _scoped(
    queryset: QuerySet[_M], scope: Scope, *, customer_field: str, user_field: str
) -> QuerySet[_M]:
    if scope.kind == ScopeKind.CUSTOMER:
        return queryset.filter(**{f"{customer_field}_id": scope.id})
    if scope.kind == ScopeKind.CUSTOMERS:
        return queryset.filter(**{f"{customer_field}_id__in": scope.ids})
    if scope.kind == ScopeKind.USER:
        return queryset.filter(**{f"{user_field}_id": scope.id})
    if scope.kind == ScopeKind.NONE:
        return queryset.none()
    return queryset


def instruments_for_scope(*, scope: Scope) -> QuerySet[Instrument]:
    """The instruments a recipient's report covers: a customer's (or chosen customers'),
    those a user is responsible for, all, or none. Customer, location and responsible
    user come along."""
    return _scoped(
        Instrument.objects.select_related("customer", "location", "responsible"),
        scope,
        customer_field="customer",
        user_field="responsible",
    )


def locations_for_scope(*, scope: Scope) -> QuerySet[Location]:
    """A customer's locations, the locations a user is responsible for, or all."""
    return _scoped(
        Location.objects.select_related("customer", "responsible"),
        scope,
        customer_field="customer",
        user_field="responsible",
    )


def tickets_for_scope(
    *, scope: Scope, status: str | None = TicketStatus.OPEN
) -> QuerySet[SupportTicket]:
    """A customer's tickets, those assigned to a user, or all; open ones unless status
    says otherwise (None: any status)."""
    queryset = SupportTicket.objects.select_related("customer", "assignee")
    if status is not None:
        queryset = queryset.filter(status=status)
    return _scoped(queryset, scope, customer_field="customer", user_field="assignee")


def filter_due(
    queryset: QuerySet[_M],
    *,
    field: str,
    due_filter: str,
    today: datetime.date,
    window_days: int = DEFAULT_DUE_WINDOW_DAYS,
) -> QuerySet[_M]:
    """Rows by their due date `field` (docs/design.md 5.6.3).

    due: from today up to and including today + window_days; overdue: before today;
    due_overdue: either; all: every row, with or without a due date.
    """
    horizon = today + datetime.timedelta(days=window_days)
    if due_filter == DueFilter.ALL:
        return queryset
    if due_filter == DueFilter.DUE:
        return queryset.filter(**{f"{field}__gte": today, f"{field}__lte": horizon})
    if due_filter == DueFilter.OVERDUE:
        return queryset.filter(**{f"{field}__lt": today})
    if due_filter == DueFilter.DUE_OVERDUE:
        return queryset.filter(**{f"{field}__lte": horizon})
    raise ValueError(f"Unknown due filter {due_filter!r}")


# --- matching records (audiences) ---------------------------------------------------------


class RecordKind(StrEnum):
    """What a report lists, as far as whose records they are goes: instruments (a user's
    are those they are responsible for), instruments by location (a user's are those at
    the locations they look after) and open tickets (a user's are those assigned)."""

    INSTRUMENTS = "instruments"
    LOCATIONS = "locations"
    TICKETS = "tickets"


# Per kind of record, the lookup from a record to the owner of a customer or user scope:
# matching_records() of Scope.all() filtered by it is matching_records() of that scope.
OWNER_LOOKUPS: dict[RecordKind, dict[ScopeKind, str]] = {
    RecordKind.INSTRUMENTS: {ScopeKind.CUSTOMER: "customer_id", ScopeKind.USER: "responsible_id"},
    RecordKind.LOCATIONS: {
        ScopeKind.CUSTOMER: "customer_id",
        ScopeKind.USER: "location__responsible_id",
    },
    RecordKind.TICKETS: {ScopeKind.CUSTOMER: "customer_id", ScopeKind.USER: "assignee_id"},
}
# Above this many owners a count reads every owner's rows in one pass instead of an IN list.
_COUNT_IN_LIST_LIMIT = 500


def matching_records(
    *,
    kind: RecordKind,
    scope: Scope,
    due_filter: str,
    window_days: int,
    today: datetime.date,
) -> QuerySet:
    """The records a report of this kind takes for a scope under a due filter (unordered):
    the one definition the report providers and the audiences share.

    Inactive records, and the records of inactive customers, are left out: they stay for
    their history but no longer take part in mails."""
    if kind == RecordKind.TICKETS:
        return filter_due(
            tickets_for_scope(scope=scope).filter(is_active=True, customer__is_active=True),
            field="due_date",
            due_filter=due_filter,
            today=today,
            window_days=window_days,
        )
    if kind == RecordKind.LOCATIONS and scope.kind == ScopeKind.USER:
        # A user's records here are the instruments at the locations they look after.
        instruments = instruments_for_scope(scope=Scope.all()).filter(
            location__in=locations_for_scope(scope=scope).filter(is_active=True).values("pk")
        )
    elif kind in (RecordKind.INSTRUMENTS, RecordKind.LOCATIONS):
        instruments = instruments_for_scope(scope=scope)
    else:
        raise ValueError(f"Unknown kind of record {kind!r}")
    return filter_due(
        instruments.filter(is_active=True, customer__is_active=True),
        field="next_due_date",
        due_filter=due_filter,
        today=today,
        window_days=window_days,
    )


def owners_with_matching_records(
    *,
    kind: RecordKind,
    owner: ScopeKind,
    due_filter: str,
    window_days: int,
    today: datetime.date,
) -> QuerySet:
    """The ids of the customers (owner CUSTOMER) or users (owner USER) that have at least
    one matching record, as a DISTINCT subquery to filter customers or users with
    (pk__in=...): one query whatever their number."""
    lookup = OWNER_LOOKUPS[kind][owner]
    return (
        matching_records(
            kind=kind,
            scope=Scope.all(),
            due_filter=due_filter,
            window_days=window_days,
            today=today,
        )
        .filter(**{f"{lookup}__isnull": False})
        .order_by()
        .values_list(lookup, flat=True)
        .distinct()
    )


def customers_with_matching_records(
    *, kind: RecordKind, due_filter: str, window_days: int, today: datetime.date
) -> QuerySet[Customer]:
    """Active customers with at least one matching record, by number."""
    return Customer.objects.filter(
        is_active=True,
        pk__in=owners_with_matching_records(
            kind=kind,
            owner=ScopeKind.CUSTOMER,
            due_filter=due_filter,
            window_days=window_days,
            today=today,
        ),
    )


def users_with_matching_records(
    *, kind: RecordKind, due_filter: str, window_days: int, today: datetime.date
) -> QuerySet[User]:
    """Active users responsible for at least one matching record (instruments: the
    responsible user; by location: the location's; tickets: the assignee)."""
    return active_users().filter(
        pk__in=owners_with_matching_records(
            kind=kind,
            owner=ScopeKind.USER,
            due_filter=due_filter,
            window_days=window_days,
            today=today,
        )
    )


def count_matching_records(
    *,
    kind: RecordKind,
    scopes: Iterable[Scope],
    due_filter: str,
    window_days: int,
    today: datetime.date,
) -> dict[Scope, int]:
    """How many records each scope's report takes: one COUNT query per kind of scope
    (grouped by owner), whatever the number of scopes."""
    by_kind: dict[ScopeKind, set[Scope]] = {}
    for scope in scopes:
        by_kind.setdefault(scope.kind, set()).add(scope)
    counts: dict[Scope, int] = {}
    for scope_kind, group in by_kind.items():
        lookup = OWNER_LOOKUPS[kind].get(scope_kind)
        if lookup is None:
            # Scopes without an owner lookup (all, none, chosen customers): few, a COUNT each.
            for scope in group:
                counts[scope] = (
                    matching_records(
                        kind=kind,
                        scope=scope,
                        due_filter=due_filter,
                        window_days=window_days,
                        today=today,
                    )
                    .order_by()
                    .count()
                )
            continue
        everything = matching_records(
            kind=kind,
            scope=Scope.all(),
            due_filter=due_filter,
            window_days=window_days,
            today=today,
        ).order_by()
        ids = {scope.id for scope in group}
        if len(ids) <= _COUNT_IN_LIST_LIMIT:
            everything = everything.filter(**{f"{lookup}__in": ids})
        found = dict(
            everything.values(lookup).annotate(rows=Count("pk")).values_list(lookup, "rows")
        )
        counts.update({scope: found.get(scope.id, 0) for scope in group})
    return counts
