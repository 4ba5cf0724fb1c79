"""Inactive records (an import marked them missing from a full export) keep their history
but drop out of reports and audiences."""

import datetime as dt

from inventory.models import DueFilter
from inventory.selectors import (
    RecordKind,
    Scope,
    customers_with_matching_records,
    matching_records,
)
from tests.factories import CustomerFactory, InstrumentFactory

TODAY = dt.date(2026, 12, 6)


def _matching(kind=RecordKind.INSTRUMENTS, scope=None):
    return matching_records(
        kind=kind,
        scope=scope or Scope.all(),
        due_filter=DueFilter.ALL,
        window_days=30,
        today=TODAY,
    )


def test_inactive_instrument_is_left_out_of_reports_and_audiences(db):
    customer = CustomerFactory()
    kept = InstrumentFactory(customer=customer)
    InstrumentFactory(customer=customer, is_active=False)

    assert list(_matching(scope=Scope.customer(customer.pk))) == [kept]


def test_instruments_of_an_inactive_customer_are_left_out(db):
    inactive = CustomerFactory(is_active=False)
    InstrumentFactory(customer=inactive)

    assert list(_matching()) == []
    assert (
        list(
            customers_with_matching_records(
                kind=RecordKind.INSTRUMENTS, due_filter=DueFilter.ALL, window_days=30, today=TODAY
            )
        )
        == []
    )


def test_customer_with_only_inactive_instruments_is_no_matching_customer(db):
    customer = CustomerFactory()
    InstrumentFactory(customer=customer, is_active=False)

    assert not customers_with_matching_records(
        kind=RecordKind.INSTRUMENTS, due_filter=DueFilter.ALL, window_days=30, today=TODAY
    ).exists()
