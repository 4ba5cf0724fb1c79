import datetime

import pytest
from django.contrib.auth.models import Group

from inventory.models import DueFilter, Instrument, SupportTicket
from inventory.selectors import (
    Scope,
    filter_due,
    has_role,
    instruments_for_scope,
    locations_for_scope,
    owner_group_choices,
    tickets_for_scope,
    visible_distribution_lists,
)
from tests.factories import (
    CustomerFactory,
    DistributionListFactory,
    InstrumentFactory,
    LocationFactory,
    SupportTicketFactory,
    UserFactory,
)

D = datetime.date
TODAY = D(2026, 3, 10)
pytestmark = pytest.mark.django_db


def numbers(queryset):
    return sorted(queryset.values_list("inventory_number", flat=True))


def test_instruments_for_scope_by_customer_user_and_all():
    customer, other = CustomerFactory(), CustomerFactory()
    user = UserFactory()
    InstrumentFactory(inventory_number="A", customer=customer)
    InstrumentFactory(inventory_number="B", customer=customer, responsible=user)
    InstrumentFactory(inventory_number="C", customer=other, responsible=user)
    InstrumentFactory(inventory_number="D", customer=other)

    assert numbers(instruments_for_scope(scope=Scope.customer(customer.pk))) == ["A", "B"]
    assert numbers(instruments_for_scope(scope=Scope.user(user.pk))) == ["B", "C"]
    assert numbers(instruments_for_scope(scope=Scope.all())) == ["A", "B", "C", "D"]


def test_instruments_for_scope_loads_related_rows_in_one_query(django_assert_num_queries):
    user = UserFactory()
    for _ in range(3):
        customer = CustomerFactory()
        InstrumentFactory(
            customer=customer, location=LocationFactory(customer=customer), responsible=user
        )

    with django_assert_num_queries(1):
        rows = [
            (i.customer.label, i.location.name, i.responsible.username)
            for i in instruments_for_scope(scope=Scope.all())
        ]

    assert len(rows) == 3


def test_instrument_scope_query_uses_the_due_index():
    customer = CustomerFactory()
    queryset = filter_due(
        instruments_for_scope(scope=Scope.customer(customer.pk)),
        field="next_due_date",
        due_filter=DueFilter.DUE_OVERDUE,
        today=TODAY,
    ).order_by("next_due_date")

    plan = queryset.explain()

    # SQLite and PostgreSQL both name the index they use in their plan.
    assert "inv_instr_customer_due_idx" in plan


def test_tickets_for_scope_open_by_default():
    customer = CustomerFactory()
    assignee = UserFactory()
    open_ticket = SupportTicketFactory(customer=customer, assignee=assignee)
    closed = SupportTicketFactory(customer=customer, assignee=assignee, status="closed")
    SupportTicketFactory()

    assert list(tickets_for_scope(scope=Scope.customer(customer.pk))) == [open_ticket]
    assert list(tickets_for_scope(scope=Scope.user(assignee.pk), status=None)) == [
        open_ticket,
        closed,
    ]
    assert tickets_for_scope(scope=Scope.all()).count() == 2


def test_locations_for_scope():
    user = UserFactory()
    mine = LocationFactory(responsible=user)
    other = LocationFactory()

    assert list(locations_for_scope(scope=Scope.user(user.pk))) == [mine]
    assert list(locations_for_scope(scope=Scope.customer(other.customer_id))) == [other]


@pytest.mark.parametrize(
    ("due_filter", "expected"),
    [
        (DueFilter.ALL, ["before", "edge", "later", "never", "past-edge", "today", "yesterday"]),
        (DueFilter.OVERDUE, ["before", "yesterday"]),
        (DueFilter.DUE, ["edge", "today"]),
        (DueFilter.DUE_OVERDUE, ["before", "edge", "today", "yesterday"]),
    ],
)
def test_filter_due_boundaries(due_filter, expected):
    customer = CustomerFactory()
    for number, due in [
        ("before", D(2026, 1, 1)),
        ("yesterday", TODAY - datetime.timedelta(days=1)),
        ("today", TODAY),
        ("later", D(2027, 1, 1)),
        ("edge", TODAY + datetime.timedelta(days=30)),
        ("past-edge", TODAY + datetime.timedelta(days=31)),
        ("never", None),
    ]:
        instrument = InstrumentFactory(inventory_number=number, customer=customer)
        Instrument.objects.filter(pk=instrument.pk).update(next_due_date=due)

    queryset = filter_due(
        Instrument.objects.all(), field="next_due_date", due_filter=due_filter, today=TODAY
    )

    assert numbers(queryset) == expected


def test_filter_due_window_reaching_a_leap_day():
    instrument = InstrumentFactory(inventory_number="leap")
    Instrument.objects.filter(pk=instrument.pk).update(next_due_date=D(2028, 2, 29))
    today = D(2028, 2, 1)

    inside = filter_due(
        Instrument.objects.all(),
        field="next_due_date",
        due_filter=DueFilter.DUE,
        today=today,
        window_days=28,
    )
    outside = filter_due(
        Instrument.objects.all(),
        field="next_due_date",
        due_filter=DueFilter.DUE,
        today=today,
        window_days=27,
    )

    assert (numbers(inside), numbers(outside)) == (["leap"], [])


def test_filter_due_on_tickets_and_unknown_filter():
    SupportTicketFactory(number="late", due_date=TODAY - datetime.timedelta(days=2))
    SupportTicketFactory(number="soon", due_date=TODAY + datetime.timedelta(days=3))

    overdue = filter_due(
        SupportTicket.objects.all(), field="due_date", due_filter="overdue", today=TODAY
    )

    assert list(overdue.values_list("number", flat=True)) == ["late"]
    with pytest.raises(ValueError, match="Unknown due filter"):
        filter_due(SupportTicket.objects.all(), field="due_date", due_filter="soon", today=TODAY)


# --- visibility -----------------------------------------------------------------------------


def test_distribution_list_visibility_by_owner_group(admin, viewer, teammate, outsider, team):
    public = DistributionListFactory(name="Alle")
    owned = DistributionListFactory(name="Team", owner_group=team)

    assert list(visible_distribution_lists(user=admin)) == [public, owned]
    assert list(visible_distribution_lists(user=teammate)) == [public, owned]
    assert list(visible_distribution_lists(user=viewer)) == [public]
    assert list(visible_distribution_lists(user=outsider)) == []


def test_owner_group_choices_are_teams_never_roles(admin, teammate, team):
    other_team = Group.objects.create(name="Außendienst")

    assert list(owner_group_choices(user=admin)) == [other_team, team]
    assert list(owner_group_choices(user=teammate)) == [team]


def test_has_role(admin, viewer, outsider, django_user_model):
    superuser = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    inactive = UserFactory(roles=["Viewer"], is_active=False)

    assert [has_role(u) for u in (admin, viewer, superuser, outsider, inactive)] == [
        True,
        True,
        True,
        False,
        False,
    ]
