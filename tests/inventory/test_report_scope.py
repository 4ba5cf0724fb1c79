"""Report scopes of addresses that belong to no customer or user, and the reports they get."""

import datetime as dt

import pytest
from django.utils import translation

from inventory.recipients import resolve_recipients, resolve_selection
from inventory.selectors import Scope, ScopeKind, instruments_for_scope, scope_labels
from templates_app.reports import get
from tests.factories import (
    CustomerFactory,
    DistributionListFactory,
    InstrumentFactory,
    SystemAddressFactory,
    UserFactory,
)

TODAY = dt.date(2026, 3, 2)


def test_scope_texts_round_trip_for_chosen_customers_and_no_report():
    scopes = [Scope.customers([3, 1, 3]), Scope.none(), Scope.all()]

    assert [str(scope) for scope in scopes] == ["customers:1,3", "none", "all"]
    assert [Scope.parse(str(scope)) for scope in scopes] == scopes
    # The same choice in another order is the same scope (one report built for both).
    assert Scope.customers([1, 3]) == Scope.customers([3, 1])
    assert hash(Scope.customers([1, 3])) == hash(Scope.customers([3, 1]))
    for bad in ("customers", "customers:", "customers:1,x", "none:3", "all:1"):
        with pytest.raises(ValueError, match="Not a scope"):
            Scope.parse(bad)
    with pytest.raises(ValueError):
        Scope.customers([])


@pytest.fixture
def world(db):
    user = UserFactory(first_name="Max", last_name="Muster", email="max@calserver.example")
    customer = CustomerFactory(number="1001", name="Muster GmbH", emails=["einkauf@muster.example"])
    system = SystemAddressFactory(name="Labor", email="labor@calserver.example")
    distribution_list = DistributionListFactory(
        name="Vertrieb", users=[user], customers=[customer], addresses=["extra@partner.example"]
    )
    return user, customer, system, distribution_list


def scopes_by_email(world, other_scope):
    user, customer, system, distribution_list = world
    resolution = resolve_selection(
        [
            f"user:{user.pk}",
            f"customer:{customer.pk}",
            f"system:{system.pk}",
            "info@firma.example",
            f"list:{distribution_list.pk}",
        ],
        other_scope=other_scope,
    )
    return {recipient.email: recipient.scope for recipient in resolution}


@pytest.mark.parametrize(
    ("other_scope", "system_scope", "address_scope"),
    [
        (None, Scope.none(), Scope.none()),
        (Scope.none(), Scope.none(), Scope.none()),
        (Scope.customers([7, 8]), Scope.customers([7, 8]), Scope.customers([7, 8])),
        # All customers reach system addresses only; the others get no report.
        (Scope.all(), Scope.all(), Scope.none()),
    ],
    ids=["default", "none", "customers", "all"],
)
def test_resolve_gives_other_addresses_the_chosen_scope(
    world, other_scope, system_scope, address_scope
):
    user, customer, _system, _list = world

    scopes = scopes_by_email(world, other_scope)

    assert scopes == {
        "max@calserver.example": Scope.user(user.pk),
        "einkauf@muster.example": Scope.customer(customer.pk),
        "labor@calserver.example": system_scope,
        "info@firma.example": address_scope,
        "extra@partner.example": address_scope,
    }


def test_resolve_recipients_passes_the_other_scope(world):
    _user, _customer, system, _list = world

    resolution = resolve_recipients(
        system_addresses=[system], addresses=["info@firma.example"], other_scope=Scope.all()
    )

    assert [(r.email, r.scope) for r in resolution] == [
        ("labor@calserver.example", Scope.all()),
        ("info@firma.example", Scope.none()),
    ]


def test_scope_labels_name_the_chosen_customers_with_one_query(db, django_assert_num_queries):
    first = CustomerFactory(number="1001", name="Muster GmbH")
    second = CustomerFactory(number="1002", name="Beispiel AG")
    chosen = Scope.customers([second.pk, first.pk])

    with django_assert_num_queries(1), translation.override("en"):
        labels = scope_labels([chosen, Scope.none(), Scope.all(), Scope.customer(first.pk)])

    assert labels == {
        chosen: "chosen customers: 1001 · Muster GmbH, 1002 · Beispiel AG",
        Scope.none(): "no report",
        Scope.all(): "all customers (internal)",
        Scope.customer(first.pk): "the customer's records",
    }
    with django_assert_num_queries(0):
        scope_labels([Scope.none(), Scope.all()])


@pytest.fixture
def three_customers(db):
    customers = [
        CustomerFactory(number=number, name=f"Kunde {number}") for number in ("A1", "B1", "C1")
    ]
    for customer in customers:
        InstrumentFactory(
            inventory_number=f"{customer.number}-1",
            customer=customer,
            last_calibration=TODAY - dt.timedelta(days=400),
        )
    return customers


@pytest.mark.parametrize("key", ["instruments_due", "instruments_by_location", "open_tickets"])
def test_no_report_scope_reads_nothing(three_customers, key, django_assert_num_queries):
    provider = get(key)

    with django_assert_num_queries(0):
        one = provider.build(scope=Scope.none(), due_filter="all", window_days=30, today=TODAY)
        many = provider.build_many(
            scopes=[Scope.none(), Scope.none()], due_filter="all", window_days=30, today=TODAY
        )

    assert one.rows == [] and one.scope == Scope.none()
    assert many == {Scope.none(): one}
    assert instruments_for_scope(scope=Scope.none()).count() == 0


def test_chosen_customers_scope_reads_only_their_rows(three_customers):
    first, _second, third = three_customers
    chosen = Scope.customers([first.pk, third.pk])
    provider = get("instruments_due")

    one = provider.build(scope=chosen, due_filter="all", window_days=30, today=TODAY)
    many = provider.build_many(
        scopes=[chosen, chosen, Scope.customer(first.pk)],
        due_filter="all",
        window_days=30,
        today=TODAY,
    )

    assert sorted(row["inventory_number"] for row in one.rows) == ["A1-1", "C1-1"]
    assert many[chosen] == one
    assert one.parameters["scope"] == f"customers:{first.pk},{third.pk}"
    assert chosen.kind == ScopeKind.CUSTOMERS
