import datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.csv_export import read_csv
from tests.factories import (
    CustomerFactory,
    InstrumentFactory,
    LocationFactory,
    UserFactory,
)
from tests.inventory.conftest import english, page_text, rows

D = datetime.date
NOW = datetime.datetime(2026, 3, 10, 12, 0, tzinfo=datetime.UTC)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["customer_list", "instrument_list", "data"])
def test_data_pages_outsider_refused_and_anonymous_redirected(client, client_for, outsider, name):
    CustomerFactory(name="Geheimkunde")

    anonymous = client.get(reverse(f"inventory:{name}"))
    refused = client_for(outsider).get(reverse(f"inventory:{name}"), follow=True)

    assert anonymous["Location"].startswith(reverse("login"))
    assert refused.status_code == 403
    assert "Geheimkunde" not in page_text(refused)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["viewer", "power_user", "admin"])
def test_data_pages_every_role_reads(client_for, request, role):
    customer = CustomerFactory(name="Muster GmbH")
    InstrumentFactory(customer=customer, description="Bügelmessschraube")
    client = client_for(request.getfixturevalue(role))

    index = client.get(reverse("inventory:data"))
    customers = client.get(reverse("inventory:customer_list"))
    instruments = client.get(reverse("inventory:instrument_list"))

    assert index["Location"] == reverse("inventory:customer_list")
    assert "Muster GmbH" in page_text(customers)
    assert "Bügelmessschraube" in page_text(instruments)
    # Read-only: no "New" button, no bulk form.
    assert 'id="bulk-form"' not in page_text(customers) + page_text(instruments)


@pytest.fixture
def data(db):
    with time_machine.travel(NOW, tick=False):
        erika = UserFactory(username="erika", first_name="Erika", last_name="Muster")
        muster = CustomerFactory(
            number="1001", name="Muster GmbH", city="Jena", emails=["a@muster.example"]
        )
        andere = CustomerFactory(
            number="2002", name="Andere AG", city="Ulm", language="en", emails=[], is_active=False
        )
        labor = LocationFactory(customer=muster, name="Prüflabor")
        instruments = {
            "overdue": InstrumentFactory(
                inventory_number="INV-1",
                customer=muster,
                location=labor,
                responsible=erika,
                manufacturer="Fluke",
                last_calibration=D(2025, 3, 1),
            ),
            "due": InstrumentFactory(
                inventory_number="INV-2",
                customer=muster,
                description="Messschieber",
                manufacturer="Mitutoyo",
                model="500-196-30",
                serial_number="MI123",
                last_calibration=D(2025, 9, 20),
                calibration_interval_months=6,
            ),
            "later": InstrumentFactory(
                inventory_number="INV-3",
                customer=andere,
                manufacturer="Testo",
                last_calibration=D(2026, 1, 5),
            ),
        }
    return {"erika": erika, "muster": muster, "andere": andere, "instruments": instruments}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"number": "100"}, ["1001"]),
        ({"name": "andere"}, ["2002"]),
        ({"language": "en"}, ["2002"]),
        ({"city": "jena"}, ["1001"]),
        ({"contacts": "muster.example"}, ["1001"]),
        ({"instrument_count_min": "2"}, ["1001"]),
        ({"q": "ulm"}, ["2002"]),
        ({"is_active": "no"}, ["2002"]),
    ],
)
def test_customer_list_each_filter(client_for, admin, data, query, expected):
    response = client_for(admin).get(reverse("inventory:customer_list"), query)

    assert [customer.number for customer in rows(response)] == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"inventory_number": "INV-2"}, ["INV-2"]),
        ({"description": "messschieber"}, ["INV-2"]),
        ({"manufacturer": "testo"}, ["INV-3"]),
        ({"model": "500-196"}, ["INV-2"]),
        ({"serial_number": "MI1"}, ["INV-2"]),
        ({"customer": "andere"}, ["INV-3"]),
        ({"customer": "1001"}, ["INV-1", "INV-2"]),
        ({"location": "prüf"}, ["INV-1"]),
        ({"responsible": "null"}, ["INV-2", "INV-3"]),
        (
            {"last_calibration_min": "2025-09-01", "last_calibration_max": "2025-12-31"},
            ["INV-2"],
        ),
        ({"calibration_interval_months_max": "6"}, ["INV-2"]),
        ({"next_due_date_min": "2026-12-01"}, ["INV-3"]),
        ({"due_state": "overdue"}, ["INV-1"]),
        ({"due_state": "due"}, ["INV-2"]),
        ({"due_state": "due_overdue"}, ["INV-1", "INV-2"]),
        ({"q": "mitutoyo"}, ["INV-2"]),
    ],
)
def test_instrument_list_each_filter(client_for, admin, data, query, expected):
    with time_machine.travel(NOW, tick=False):
        response = client_for(admin).get(reverse("inventory:instrument_list"), query)

    assert [instrument.inventory_number for instrument in rows(response)] == expected


@pytest.mark.django_db
def test_instrument_list_responsible_filter_and_badges(client_for, admin, data):
    client = english(client_for(admin))

    with time_machine.travel(NOW, tick=False):
        filtered = client.get(
            reverse("inventory:instrument_list"), {"responsible": data["erika"].pk}
        )
        page = client.get(reverse("inventory:instrument_list"))

    assert [instrument.inventory_number for instrument in rows(filtered)] == ["INV-1"]
    text = page_text(page)
    assert 'badge text-bg-danger">overdue' in text
    assert 'badge text-bg-warning">due' in text
    # Default order: by next due date.
    assert [instrument.inventory_number for instrument in rows(page)] == ["INV-1", "INV-2", "INV-3"]


@pytest.mark.django_db
def test_instrument_export_has_real_dates_and_names(client_for, admin, data):
    response = english(client_for(admin)).get(
        reverse("inventory:instrument_list"), {"_export": "csv", "inventory_number": "INV-1"}
    )
    content = b"".join(response.streaming_content).decode("utf-8-sig")
    response.close()

    assert read_csv(content) == [
        [
            "Inventory number",
            "Description",
            "Manufacturer",
            "Model",
            "Serial number",
            "Customer",
            "Location",
            "Responsible",
            "Last calibration",
            "Interval (months)",
            "Next calibration",
        ],
        [
            "INV-1",
            "Digitalmultimeter",
            "Fluke",
            "87V",
            data["instruments"]["overdue"].serial_number,
            "1001 · Muster GmbH",
            "Prüflabor",
            "Erika Muster",
            "2025-03-01",
            "12",
            "2026-03-01",
        ],
    ]


@pytest.mark.django_db
def test_customer_export_lists_contact_addresses(client_for, admin, data):
    response = english(client_for(admin)).get(
        reverse("inventory:customer_list"), {"_export": "csv"}
    )
    content = b"".join(response.streaming_content).decode("utf-8-sig")
    response.close()

    assert read_csv(content) == [
        [
            "Customer number",
            "Name",
            "Language",
            "City",
            "Contact addresses",
            "Instruments",
            "Active",
        ],
        ["1001", "Muster GmbH", "German", "Jena", "a@muster.example", "2", "yes"],
        ["2002", "Andere AG", "English", "Ulm", "", "1", "no"],
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("url_name", ["inventory:customer_list", "inventory:instrument_list"])
def test_data_list_query_count_does_not_grow_with_rows(
    client_for, admin, url_name, django_assert_num_queries
):
    client = client_for(admin)

    def add():
        customer = CustomerFactory(emails=["a@k.example", "b@k.example"])
        InstrumentFactory(
            customer=customer,
            location=LocationFactory(customer=customer),
            responsible=UserFactory(),
        )

    add()
    client.get(reverse(url_name))
    with CaptureQueriesContext(connection) as one_row:
        client.get(reverse(url_name))
    add()
    add()

    with django_assert_num_queries(len(one_row.captured_queries)):
        response = client.get(reverse(url_name))

    assert len(rows(response)) == 3


@pytest.mark.django_db
def test_instrument_export_leaves_missing_values_empty(client_for, admin, data):
    response = client_for(admin).get(
        reverse("inventory:instrument_list"), {"_export": "csv", "inventory_number": "INV-2"}
    )
    content = b"".join(response.streaming_content).decode("utf-8-sig")
    response.close()

    row = read_csv(content)[1]
    assert (row[0], row[6], row[7]) == ("INV-2", "", "")
