import datetime

from imports.models import ImportStatus
from imports.selectors import rejection_reason
from inventory.models import Customer, CustomerContact, Instrument, Location, SupportTicket
from maillog.models import LogEntry
from tests.factories import CustomerFactory, UserFactory
from tests.imports.conftest import xlsx_bytes

CUSTOMER_COLUMNS = {
    "Kundennummer": "number",
    "Name": "name",
    "Ort": "city",
    "E-Mail": "contact_emails",
    "Sprache": "language",
}
INSTRUMENT_COLUMNS = {
    "Inventarnummer": "inventory_number",
    "Bezeichnung": "description",
    "Kunde": "customer_number",
    "Standort": "location",
    "Letzte Kalibrierung": "last_calibration",
    "Intervall": "calibration_interval_months",
}


def reasons(run):
    return [(r["line"], rejection_reason(r, kind=run.kind)) for r in run.rejections]


def test_customers_are_created_with_contacts(run_import):
    content = xlsx_bytes(
        [
            ["Kundennummer", "Name", "Ort", "E-Mail", "Sprache"],
            ["1001", "Müller GmbH", "Köln", "a@mueller.de; b@mueller.de", "Deutsch"],
            ["1002", "Smith Ltd", "", "info@smith.example", "englisch"],
        ]
    )

    run = run_import("customers", content, CUSTOMER_COLUMNS)

    assert (run.status, run.created, run.updated, run.unchanged, run.rejected) == (
        ImportStatus.DONE,
        2,
        0,
        0,
        0,
    )
    muller = Customer.objects.get(number="1001")
    assert (muller.name, muller.city, muller.language) == ("Müller GmbH", "Köln", "de")
    assert list(muller.contacts.values_list("email", flat=True)) == ["a@mueller.de", "b@mueller.de"]
    assert Customer.objects.get(number="1002").language == "en"
    entry = LogEntry.objects.get(object_id=run.pk)
    assert entry.params["created"] == 2


def test_dry_run_writes_nothing(run_import):
    content = xlsx_bytes([["Kundennummer", "Name"], ["1001", "Müller GmbH"]])

    run = run_import(
        "customers", content, {"Kundennummer": "number", "Name": "name"}, confirm=False
    )

    assert (run.status, run.created) == (ImportStatus.ANALYSED, 1)
    assert Customer.objects.count() == 0


def test_second_import_is_all_unchanged(run_import):
    CustomerFactory(number="1001", emails=[])
    rows = [
        ["Inventarnummer", "Bezeichnung", "Kunde", "Standort", "Letzte Kalibrierung", "Intervall"],
        ["INV-1", "Multimeter", "1001", "", "31.12.2025", "12"],
        ["INV-2", "Waage", "1001", "", "", ""],
    ]
    content = xlsx_bytes(rows)

    first = run_import("instruments", content, INSTRUMENT_COLUMNS)
    second = run_import("instruments", content, INSTRUMENT_COLUMNS)

    assert (first.created, first.unchanged) == (2, 0)
    assert (second.created, second.updated, second.unchanged, second.rejected) == (0, 0, 2, 0)
    instrument = Instrument.objects.get(inventory_number="INV-1")
    assert instrument.last_calibration == datetime.date(2025, 12, 31)
    assert instrument.next_due_date == datetime.date(2026, 12, 31)


def test_changed_row_is_updated(run_import):
    CustomerFactory(number="1001", name="Alt", emails=["a@x.de"])
    content = xlsx_bytes([["Kundennummer", "Name", "E-Mail"], ["1001", "Neu", "a@x.de"]])

    run = run_import(
        "customers", content, {"Kundennummer": "number", "Name": "name", "E-Mail": "contact_emails"}
    )

    assert (run.created, run.updated, run.unchanged) == (0, 1, 0)
    assert Customer.objects.get(number="1001").name == "Neu"
    assert CustomerContact.objects.count() == 1


def test_every_rejection_reason_is_given_with_its_line(run_import):
    CustomerFactory(number="1001", emails=[])
    rows = [
        ["Inventarnummer", "Bezeichnung", "Kunde", "Standort", "Letzte Kalibrierung", "Intervall"],
        ["INV-1", "Multimeter", "1001", "", "31.12.2025", "12"],
        ["INV-2", "Waage", "9999", "", "", ""],
        ["INV-3", "Waage", "1001", "", "Silvester", ""],
        ["INV-1", "Doppelt", "1001", "", "", ""],
        ["INV-4", "", "1001", "", "", ""],
        ["INV-5", "Waage", "1001", "Halle 9", "", ""],
        ["INV-6", "Waage", "1001", "", "", "zwölf"],
        ["INV-7", "Waage", "1001", "", "", "500"],
    ]

    run = run_import("instruments", xlsx_bytes(rows), INSTRUMENT_COLUMNS)

    assert run.created == 1
    assert reasons(run) == [
        (3, "unknown customer number: 9999"),
        (4, "date not understood in last calibration: Silvester"),
        (5, "duplicate key in the file (first in line 2)"),
        (6, "description is empty"),
        (7, "unknown location of the customer: Halle 9"),
        (8, "calibration interval (months) is not a number: zwölf"),
        (9, "calibration interval must be 1 to 240 months: 500"),
    ]


def test_bad_email_is_rejected(run_import):
    content = xlsx_bytes([["Kundennummer", "Name", "E-Mail"], ["1001", "X", "kein-at-zeichen"]])

    run = run_import(
        "customers", content, {"Kundennummer": "number", "Name": "name", "E-Mail": "contact_emails"}
    )

    assert reasons(run) == [(2, "bad e-mail address: kein-at-zeichen")]
    assert Customer.objects.count() == 0


def test_mark_missing_inactive_counts_in_dry_run_and_applies(run_import):
    CustomerFactory(number="1001", emails=[])
    CustomerFactory(number="1002", emails=[])
    content = xlsx_bytes([["Kundennummer", "Name"], ["1001", "Bleibt"]])
    columns = {"Kundennummer": "number", "Name": "name"}

    dry = run_import("customers", content, columns, confirm=False, mark_missing_inactive=True)
    assert (dry.inactivated, Customer.objects.filter(is_active=False).count()) == (1, 0)

    run = run_import("customers", content, columns, mark_missing_inactive=True)

    assert run.inactivated == 1
    assert dict(Customer.objects.values_list("number", "is_active")) == {
        "1001": True,
        "1002": False,
    }


def test_missing_records_stay_active_by_default(run_import):
    CustomerFactory(number="1002", emails=[])
    content = xlsx_bytes([["Kundennummer", "Name"], ["1001", "Neu"]])

    run = run_import("customers", content, {"Kundennummer": "number", "Name": "name"})

    assert run.inactivated == 0
    assert Customer.objects.get(number="1002").is_active is True


def test_locations_and_tickets(run_import):
    customer = CustomerFactory(number="1001", emails=[])
    UserFactory(username="kalibrierer", email="k@lab.de")
    locations = xlsx_bytes(
        [["Kunde", "Standort", "Verantwortlich"], ["1001", "Halle 1", "K@lab.de"]]
    )
    tickets = xlsx_bytes(
        [
            ["Ticket", "Betreff", "Status", "Kunde", "Fällig"],
            ["T-1", "Defekt", "Offen", "1001", "31.12.2026"],
            ["T-2", "Erledigt", "Abgeschlossen", "1001", ""],
        ]
    )

    location_run = run_import(
        "locations",
        locations,
        {"Kunde": "customer_number", "Standort": "name", "Verantwortlich": "responsible"},
    )
    ticket_run = run_import(
        "tickets",
        tickets,
        {
            "Ticket": "number",
            "Betreff": "subject",
            "Status": "status",
            "Kunde": "customer_number",
            "Fällig": "due_date",
        },
        value_maps={"status": {"Abgeschlossen": "closed"}},
    )

    assert location_run.created == 1
    assert Location.objects.get(customer=customer).responsible.username == "kalibrierer"
    assert ticket_run.created == 2
    assert dict(SupportTicket.objects.values_list("number", "status")) == {
        "T-1": "open",
        "T-2": "closed",
    }
    assert SupportTicket.objects.get(number="T-1").due_date == datetime.date(2026, 12, 31)


def test_users_are_created_with_role_and_no_password(run_import):
    content = xlsx_bytes(
        [["Benutzer", "E-Mail", "Rolle"], ["anna", "anna@lab.de", "Leser"], ["", "bob@lab.de", ""]]
    )

    run = run_import("users", content, {"Benutzer": "username", "E-Mail": "email", "Rolle": "role"})

    from django.contrib.auth import get_user_model

    anna = get_user_model().objects.get(username="anna")
    assert run.created == 2
    assert list(anna.groups.values_list("name", flat=True)) == ["Viewer"]
    assert anna.has_usable_password() is False
    assert get_user_model().objects.filter(username="bob@lab.de").exists()
