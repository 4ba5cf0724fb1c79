import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from inventory.models import Instrument, compute_next_due_date
from tests.factories import CustomerFactory, InstrumentFactory, LocationFactory

D = datetime.date


@pytest.mark.parametrize(
    ("last", "months", "expected"),
    [
        (D(2026, 3, 15), 12, D(2027, 3, 15)),
        (D(2026, 1, 31), 1, D(2026, 2, 28)),
        (D(2028, 1, 31), 1, D(2028, 2, 29)),
        (D(2024, 2, 29), 12, D(2025, 2, 28)),
        (D(2024, 2, 29), 48, D(2028, 2, 29)),
        (D(2026, 8, 31), 6, D(2027, 2, 28)),
        (D(2026, 10, 31), 1, D(2026, 11, 30)),
        (D(2026, 12, 15), 1, D(2027, 1, 15)),
        (None, 12, None),
    ],
)
def test_compute_next_due_date_calendar_months(last, months, expected):
    assert compute_next_due_date(last, months) == expected


@pytest.mark.django_db
def test_instrument_save_stores_next_due_date():
    instrument = InstrumentFactory(last_calibration=D(2026, 1, 31), calibration_interval_months=1)

    instrument.refresh_from_db()
    assert instrument.next_due_date == D(2026, 2, 28)


@pytest.mark.django_db
def test_instrument_save_with_update_fields_keeps_due_date_consistent():
    instrument = InstrumentFactory(last_calibration=D(2026, 1, 10), calibration_interval_months=12)
    instrument.calibration_interval_months = 6

    instrument.save(update_fields=["calibration_interval_months"])

    instrument.refresh_from_db()
    assert instrument.next_due_date == D(2026, 7, 10)


@pytest.mark.django_db
def test_instrument_without_last_calibration_has_no_due_date():
    instrument = InstrumentFactory(last_calibration=None)

    instrument.refresh_from_db()
    assert instrument.next_due_date is None


@pytest.mark.django_db
def test_instrument_location_of_another_customer_is_refused():
    instrument = InstrumentFactory.build(customer=CustomerFactory(), location=LocationFactory())

    with pytest.raises(ValidationError) as caught:
        instrument.full_clean()

    assert caught.value.message_dict["location"] == ["The location belongs to another customer."]


@pytest.mark.django_db
def test_instrument_interval_out_of_range_is_refused_by_the_database():
    customer = CustomerFactory()

    with pytest.raises(IntegrityError):
        Instrument.objects.create(
            inventory_number="X-1",
            description="Waage",
            customer=customer,
            calibration_interval_months=0,
        )


@pytest.mark.django_db
def test_customer_label_and_str():
    customer = CustomerFactory(number="1001", name="Muster GmbH")

    assert (customer.label, str(customer)) == ("1001 · Muster GmbH", "1001 · Muster GmbH")


@pytest.mark.django_db
def test_customer_contact_address_unique_per_customer_ignoring_case():
    customer = CustomerFactory(emails=["einkauf@muster.example"])
    contact = customer.contacts.model(customer=customer, email="Einkauf@Muster.example")

    with pytest.raises(ValidationError) as caught:
        contact.full_clean()

    assert caught.value.message_dict == {"email": ["The customer already has this address."]}
