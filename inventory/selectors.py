"""Reads of calServer data: list pages, visibility, and the rows a report takes per scope.

Reports select rows by a recipient's scope (inventory.recipients.Scope): a customer's
records, the records a user is responsible for, or all. Each of those is one indexed
range scan: instruments by (customer, next_due_date), (responsible, next_due_date) or
(next_due_date); tickets by (customer, due_date), (assignee, due_date), (status, due_date).
"""

import datetime
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group, User
from django.db.models import Model, Q, QuerySet

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
    USER = "user"
    ALL = "all"


@dataclass(frozen=True)
class Scope:
    """Which rows a recipient's report covers: one customer's, one user's, or all.

    str() gives a stable text ("customer:5", "user:12", "all") to store, parse() reads it.
    """

    kind: ScopeKind
    id: int | None = None

    def __post_init__(self) -> None:
        if (self.kind == ScopeKind.ALL) != (self.id is None):
            raise ValueError(f"Scope {self.kind} needs {'no' if self.id else 'an'} id")

    def __str__(self) -> str:
        return str(self.kind) if self.id is None else f"{self.kind}:{self.id}"

    @classmethod
    def customer(cls, pk: int) -> "Scope":
        return cls(ScopeKind.CUSTOMER, int(pk))

    @classmethod
    def user(cls, pk: int) -> "Scope":
        return cls(ScopeKind.USER, int(pk))

    @classmethod
    def all(cls) -> "Scope":
        return cls(ScopeKind.ALL)

    @classmethod
    def parse(cls, text: str) -> "Scope":
        kind, _sep, pk = text.partition(":")
        try:
            return cls(ScopeKind(kind), int(pk) if pk else None)
        except ValueError:
            raise ValueError(f"Not a scope: {text!r}") from None


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
    if scope.kind == ScopeKind.USER:
        return queryset.filter(**{f"{user_field}_id": scope.id})
    return queryset


def instruments_for_scope(*, scope: Scope) -> QuerySet[Instrument]:
    """The instruments a recipient's report covers: a customer's, those a user is
    responsible for, or all. Customer, location and responsible user come along."""
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
