import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory import services
from inventory.models import DistributionList, Instrument, SystemAddress, UserProfile
from inventory.services import AddressEntry
from tests.factories import (
    CustomerFactory,
    DistributionListFactory,
    InstrumentFactory,
    LocationFactory,
    SystemAddressFactory,
    UserFactory,
)

D = datetime.date
pytestmark = pytest.mark.django_db


# --- instruments ----------------------------------------------------------------------------


def test_instruments_recompute_repairs_stale_due_dates_only():
    right = InstrumentFactory(last_calibration=D(2026, 1, 31), calibration_interval_months=1)
    stale = InstrumentFactory(last_calibration=D(2024, 2, 29), calibration_interval_months=12)
    missing = InstrumentFactory(last_calibration=D(2026, 5, 1), calibration_interval_months=6)
    never = InstrumentFactory(last_calibration=None)
    # Writes that bypass Instrument.save() (raw updates, imports) leave stale dates behind.
    Instrument.objects.filter(pk=stale.pk).update(next_due_date=D(2025, 3, 1))
    Instrument.objects.filter(pk=missing.pk).update(next_due_date=None)
    Instrument.objects.filter(pk=never.pk).update(next_due_date=D(2026, 1, 1))

    changed = services.instruments_recompute_next_due()

    dues = dict(Instrument.objects.values_list("pk", "next_due_date"))
    assert changed == 3
    assert dues == {
        right.pk: D(2026, 2, 28),
        stale.pk: D(2025, 2, 28),
        missing.pk: D(2026, 11, 1),
        never.pk: None,
    }


def test_instruments_recompute_limited_to_a_queryset():
    inside = InstrumentFactory(last_calibration=D(2026, 1, 1))
    outside = InstrumentFactory(last_calibration=D(2026, 1, 1))
    Instrument.objects.update(next_due_date=None)

    services.instruments_recompute_next_due(instruments=Instrument.objects.filter(pk=inside.pk))

    dues = dict(Instrument.objects.values_list("pk", "next_due_date"))
    assert dues == {inside.pk: D(2027, 1, 1), outside.pk: None}


def test_instruments_bulk_update_recomputes_due_dates_in_few_queries():
    customer = CustomerFactory()
    instruments = [
        InstrumentFactory(
            customer=customer, last_calibration=D(2026, 1, 31), calibration_interval_months=12
        )
        for _ in range(5)
    ]
    other = InstrumentFactory(last_calibration=D(2026, 1, 31), calibration_interval_months=12)

    with CaptureQueriesContext(connection) as queries:
        updated = services.instruments_bulk_update(
            instruments=Instrument.objects.filter(customer=customer),
            values={"last_calibration": D(2026, 3, 31), "calibration_interval_months": 1},
        )

    statements = [
        query["sql"]
        for query in queries.captured_queries
        if not query["sql"].startswith(("SAVEPOINT", "RELEASE"))
    ]
    # Read the ids, update them, read the pairs, write the new dates: however many rows.
    assert updated == 5
    assert len(statements) == 4
    assert set(
        Instrument.objects.filter(pk__in=[i.pk for i in instruments]).values_list(
            "last_calibration", "calibration_interval_months", "next_due_date"
        )
    ) == {(D(2026, 3, 31), 1, D(2026, 4, 30))}
    other.refresh_from_db()
    assert other.next_due_date == D(2027, 1, 31)


def test_instruments_bulk_update_refuses_invalid_interval_and_foreign_location():
    instrument = InstrumentFactory()
    foreign_location = LocationFactory()

    with pytest.raises(ValidationError) as interval:
        services.instruments_bulk_update(
            instruments=Instrument.objects.all(), values={"calibration_interval_months": 0}
        )
    with pytest.raises(ValidationError) as location:
        services.instruments_bulk_update(
            instruments=Instrument.objects.all(), values={"location": foreign_location}
        )

    assert "calibration_interval_months" in interval.value.message_dict
    assert location.value.message_dict == {
        "location": ["The location belongs to another customer."]
    }
    instrument.refresh_from_db()
    assert (instrument.calibration_interval_months, instrument.location) == (12, None)


def test_instrument_update_changes_due_date():
    instrument = InstrumentFactory(last_calibration=D(2026, 1, 15), calibration_interval_months=12)

    changed = services.instrument_update(
        instrument=instrument,
        values={"last_calibration": D(2026, 6, 30), "description": "Digitalmultimeter"},
    )

    instrument.refresh_from_db()
    assert changed == ["last_calibration"]
    assert instrument.next_due_date == D(2027, 6, 30)


# --- profiles -------------------------------------------------------------------------------


def test_profile_for_creates_once_with_installation_language(settings):
    settings.LANGUAGE_CODE = "de"
    user = UserFactory()

    first = services.profile_for(user)
    again = services.profile_for(type(user).objects.get(pk=user.pk))

    assert (first.pk, first.language) == (again.pk, "de")
    assert UserProfile.objects.count() == 1


def test_profile_set_language_validates():
    user = UserFactory()

    services.profile_set_language(user=user, language="en")
    with pytest.raises(ValidationError):
        services.profile_set_language(user=user, language="fr")

    assert UserProfile.objects.get(user=user).language == "en"


# --- customers ------------------------------------------------------------------------------


def test_customer_create_with_contacts_in_order_without_repeats():
    customer = services.customer_create(
        number="1001",
        name="Muster GmbH",
        contacts=[
            "einkauf@muster.example",
            AddressEntry("qs@muster.example", "Anna QS"),
            "EINKAUF@muster.example",
        ],
    )

    assert list(customer.contacts.values_list("email", "name", "position")) == [
        ("einkauf@muster.example", "", 0),
        ("qs@muster.example", "Anna QS", 1),
    ]


def test_customer_set_contacts_refuses_bad_address_and_keeps_old_ones():
    customer = CustomerFactory(emails=["alt@muster.example"])

    with pytest.raises(ValidationError) as caught:
        services.customer_set_contacts(
            customer=customer, contacts=["neu@muster.example", "kaputt@"]
        )

    assert caught.value.message_dict == {"contacts": ["kaputt@: Enter a valid email address."]}
    assert list(customer.contacts.values_list("email", flat=True)) == ["alt@muster.example"]


# --- distribution lists ---------------------------------------------------------------------


def test_distribution_list_create_with_members():
    user = UserFactory()
    customer = CustomerFactory()

    distribution_list = services.distribution_list_create(
        name=" Qualitätssicherung ",
        description="QS",
        users=[user],
        customers=[customer.pk],
        addresses=[
            "qs@calserver.example",
            AddressEntry("leitung@calserver.example", "QS-Leitung"),
            "QS@calserver.example",
        ],
    )

    assert distribution_list.name == "Qualitätssicherung"
    assert list(distribution_list.users.all()) == [user]
    assert list(distribution_list.customers.all()) == [customer]
    assert list(distribution_list.addresses.values_list("email", "name")) == [
        ("qs@calserver.example", ""),
        ("leitung@calserver.example", "QS-Leitung"),
    ]


def test_distribution_list_name_unique_ignoring_case():
    DistributionListFactory(name="Kalibrier-Newsletter")

    with pytest.raises(ValidationError) as caught:
        services.distribution_list_create(name="KALIBRIER-newsletter")

    assert caught.value.message_dict == {
        "name": ["A distribution list with this name already exists."]
    }


def test_distribution_list_bad_address_rolls_back_everything():
    with pytest.raises(ValidationError) as caught:
        services.distribution_list_create(
            name="Neu", addresses=["ok@calserver.example", "nicht gültig"]
        )

    assert caught.value.message_dict == {
        "addresses": ["nicht gültig: Enter a valid email address."]
    }
    assert DistributionList.objects.count() == 0


def test_distribution_list_update_replaces_members():
    old_user, new_user = UserFactory(), UserFactory()
    distribution_list = DistributionListFactory(
        users=[old_user], addresses=["alt@calserver.example"]
    )

    services.distribution_list_update(
        distribution_list=distribution_list,
        name="Umbenannt",
        description="neu",
        owner_group=None,
        users=[new_user],
        customers=[],
        addresses=["neu@calserver.example"],
    )

    distribution_list.refresh_from_db()
    assert distribution_list.name == "Umbenannt"
    assert list(distribution_list.users.all()) == [new_user]
    assert list(distribution_list.addresses.values_list("email", flat=True)) == [
        "neu@calserver.example"
    ]


def test_distribution_list_duplicate_copies_members_with_free_name(team):
    user = UserFactory()
    customer = CustomerFactory()
    original = DistributionListFactory(
        name="Labor",
        owner_group=team,
        users=[user],
        customers=[customer],
        addresses=[("a@calserver.example", "A")],
    )
    DistributionListFactory(name="Labor (copy)")

    copy = services.distribution_list_duplicate(distribution_list=original)

    assert copy.name == "Labor (copy 2)"
    assert (copy.owner_group, list(copy.users.all()), list(copy.customers.all())) == (
        team,
        [user],
        [customer],
    )
    assert list(copy.addresses.values_list("email", "name")) == [("a@calserver.example", "A")]


def test_distribution_list_delete_keeps_members():
    user = UserFactory()
    distribution_list = DistributionListFactory(users=[user], addresses=["a@calserver.example"])

    services.distribution_list_delete(distribution_list=distribution_list)

    assert DistributionList.objects.count() == 0
    assert type(user).objects.filter(pk=user.pk).exists()


# --- system addresses -----------------------------------------------------------------------


def test_system_address_create_update_duplicate_delete():
    created = services.system_address_create(
        values={
            "name": "Kalibrierlabor",
            "email": "labor@calserver.example",
            "language": "de",
            "description": "",
        }
    )
    changed = services.system_address_update(
        system_address=created,
        values={"email": "kalibrierlabor@calserver.example", "name": "Kalibrierlabor"},
    )
    copy = services.system_address_duplicate(system_address=created)
    services.system_address_delete(system_address=created)

    assert changed == ["email"]
    assert list(SystemAddress.objects.values_list("name", "email")) == [
        ("Kalibrierlabor (copy)", "kalibrierlabor@calserver.example")
    ]
    assert copy.language == "de"


def test_system_address_duplicate_name_and_bad_address_refused():
    SystemAddressFactory(name="Kalibrierlabor")

    with pytest.raises(ValidationError) as caught:
        services.system_address_create(
            values={"name": "kalibrierlabor", "email": "kein-at", "language": "de"}
        )

    assert caught.value.message_dict == {
        "email": ["Enter a valid email address."],
        "name": ["A system address with this name already exists."],
    }
