"""Spreadsheet import end to end in Chromium: an administrator uploads calServer's customer
and instrument exports, maps their columns, reads the dry run, confirms, watches the
progress bar finish and finds the records in the lists; an action for "customers with
matching records" then mails each imported customer a report of only their due instruments.

The import's passes run where the worker would run them, here in the test process, while
the page polls its progress (like the run of the action in test_audience_browser)."""

import datetime as dt
import io

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.utils import timezone
from openpyxl import Workbook, load_workbook
from playwright.sync_api import expect

from actions import runs
from actions import services as action_services
from actions.models import ActionRun
from calmail.common.roles import ADMINISTRATOR
from imports import services as import_services
from imports.models import ImportRun, ImportStatus
from inventory.models import Customer, Instrument
from mailbox.delivery import deliver_due
from mailbox.models import OutboxMessage
from tests.factories import MailTemplateFactory, SmtpConfigurationFactory

PASSWORD = "correct horse battery staple"
# A Monday, midday in Berlin: the same date in UTC and locally, whatever the real clock.
NOON = dt.datetime(2026, 3, 2, 11, 0, tzinfo=dt.UTC)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# calServer's grid exports, with its column titles (not calmail's field names).
CUSTOMERS = [
    ["KTAG", "Firma", "Ort", "E-Mail Kontakt"],
    ["7001", "Muster Messtechnik GmbH", "Jena", "labor@k7001.example"],
    ["7002", "Labor Beispiel AG", "Erfurt", "pruefmittel@k7002.example"],
    ["7003", "Kalibrierdienst Nord KG", "Kiel", "service@k7003.example"],
    ["7004", "Ohne Adresse GmbH", "Gera", "kein-at-zeichen"],
]
# Twelve-month interval: calibrated before 2 March 2025 is overdue on 2 March 2026.
INSTRUMENTS = [
    ["Inventarnr.", "Bezeichnung", "Kunde", "Letzte Kalibrierung"],
    ["INV-7001-A", "Messschieber 150 mm", "7001", "10.01.2025"],
    ["INV-7001-B", "Drehmomentschlüssel", "7001", "12.02.2025"],
    ["INV-7001-C", "Bügelmessschraube", "7001", "15.01.2026"],
    ["INV-7002-A", "Digitalmultimeter", "7002", "20.02.2025"],
    ["INV-7003-A", "Prüfgewicht 1 kg", "7003", "10.02.2026"],
]
DUE = {
    "labor@k7001.example": {"INV-7001-A", "INV-7001-B"},
    "pruefmittel@k7002.example": {"INV-7002-A"},
}


@pytest.fixture
def clock():
    with time_machine.travel(NOON, tick=True):
        yield


@pytest.fixture
def administrator(django_user_model, clock):
    user = django_user_model.objects.create_user(username="ada", password=PASSWORD)
    user.groups.add(Group.objects.get(name=ADMINISTRATOR))
    return user


def workbook(rows) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def run_pass(page, run: ImportRun, task) -> None:
    """Run the queued pass the way the worker's task does, while the page shows the bar;
    the page reloads itself once its poll reports the pass over."""
    progress = page.get_by_test_id("import-progress")
    expect(progress).to_be_visible()
    expect(progress.locator("[data-progress-done]")).to_have_text("0")
    with page.expect_navigation(timeout=15_000):
        task(run_id=run.pk)
    expect(progress).to_have_count(0)


def import_file(page, live_server, *, kind, name, content, columns) -> ImportRun:
    """Upload, map (column title -> field), start the dry run and wait for its counts."""
    page.goto(f"{live_server.url}/imports/")
    with page.expect_navigation():
        page.get_by_test_id(f"import-{kind}").click()
    page.set_input_files(
        "input[name=file]", files=[{"name": name, "mimeType": XLSX, "buffer": content}]
    )
    with page.expect_navigation():
        page.click("input[name=upload]")
    run = ImportRun.objects.get(file_name=name)
    assert page.url == f"{live_server.url}/imports/runs/{run.pk}/mapping/"
    for title, field in columns.items():
        page.get_by_label(title, exact=True).select_option(field)
    with page.expect_navigation():
        page.click("input[name=dry_run]")
    assert page.url == f"{live_server.url}/imports/runs/{run.pk}/"
    run_pass(page, run, import_services.run_analyse)
    return run


def counts(page) -> dict[str, str]:
    table = page.get_by_test_id("import-counts")
    return {
        name: table.locator(f"[data-count={name}]").inner_text()
        for name in ("created", "updated", "unchanged", "rejected")
    }


def confirm(page, live_server, run: ImportRun) -> dict:
    """Confirm the dry run, let the import run, return the progress endpoint's last word."""
    with page.expect_navigation():
        page.get_by_test_id("import-confirm").click()
    run_pass(page, run, import_services.run_apply)
    return page.request.get(f"{live_server.url}/imports/runs/{run.pk}/progress/").json()


def report_numbers(message) -> list[str]:
    """The inventory numbers in the mail's one Excel attachment."""
    attachments = [part for part in message.walk() if part.get_filename()]
    assert [part.get_filename().endswith(".xlsx") for part in attachments] == [True]
    sheet = load_workbook(io.BytesIO(attachments[0].get_payload(decode=True))).active
    return sorted(
        str(cell.value)
        for row in sheet.iter_rows()
        for cell in row
        if str(cell.value).startswith("INV-")
    )


def test_import_from_excel_then_mail_reports_to_the_imported_customers(
    page, live_server, login, administrator, smtp_server
):
    login(administrator, PASSWORD)
    page.set_viewport_size({"width": 1366, "height": 900})

    # Customers with their contact addresses: the dry run writes nothing and names the bad row.
    customers = import_file(
        page,
        live_server,
        kind="customers",
        name="Kunden.xlsx",
        content=workbook(CUSTOMERS),
        columns={
            "KTAG": "number",
            "Firma": "name",
            "Ort": "city",
            "E-Mail Kontakt": "contact_emails",
        },
    )
    assert counts(page) == {"created": "3", "updated": "0", "unchanged": "0", "rejected": "1"}
    rejection = page.get_by_test_id("import-rejections").locator("tbody tr")
    expect(rejection).to_have_count(1)
    expect(rejection.locator("td").first).to_have_text("5")
    expect(rejection.locator("td").last).to_contain_text("kein-at-zeichen")
    assert Customer.objects.count() == 0

    progress = confirm(page, live_server, customers)
    assert progress == {
        "status": ImportStatus.DONE,
        "running": False,
        "rows_done": 4,
        "rows_total": 4,
        "error": "",
    }
    assert counts(page) == {"created": "3", "updated": "0", "unchanged": "0", "rejected": "1"}
    assert sorted(Customer.objects.values_list("number", "city", "contacts__email")) == [
        ("7001", "Jena", "labor@k7001.example"),
        ("7002", "Erfurt", "pruefmittel@k7002.example"),
        ("7003", "Kiel", "service@k7003.example"),
    ]

    # Their instruments, German dates as calServer writes them.
    instruments = import_file(
        page,
        live_server,
        kind="instruments",
        name="Prüfmittel.xlsx",
        content=workbook(INSTRUMENTS),
        columns={
            "Inventarnr.": "inventory_number",
            "Bezeichnung": "description",
            "Kunde": "customer_number",
            "Letzte Kalibrierung": "last_calibration",
        },
    )
    assert counts(page) == {"created": "5", "updated": "0", "unchanged": "0", "rejected": "0"}
    assert Instrument.objects.count() == 0
    assert confirm(page, live_server, instruments)["status"] == ImportStatus.DONE
    assert counts(page) == {"created": "5", "updated": "0", "unchanged": "0", "rejected": "0"}
    assert Instrument.objects.get(inventory_number="INV-7001-A").next_due_date == dt.date(
        2026, 1, 10
    )

    # Both in their lists.
    page.goto(f"{live_server.url}/inventory/data/customers/")
    table = page.locator("main table").first
    for number, name in (row[:2] for row in CUSTOMERS[1:4]):
        expect(table).to_contain_text(number)
        expect(table).to_contain_text(name)
    expect(table).not_to_contain_text("Ohne Adresse GmbH")
    page.goto(f"{live_server.url}/inventory/data/instruments/")
    table = page.locator("main table").first
    for row in INSTRUMENTS[1:]:
        expect(table).to_contain_text(row[0])

    # An action for the customers with due instruments, its template attaching the Excel report.
    team = Group.objects.create(name="Kalibrierlabor")
    administrator.groups.add(team)
    configuration = SmtpConfigurationFactory(
        name="Labor-Server",
        is_default=True,
        host=smtp_server.host,
        port=smtp_server.port,
        security="none",
        from_email="labor@calserver.example",
    )
    action = action_services.action_create(
        values={
            "description": "Fällige Prüfmittel je Kunde",
            "time_of_day": dt.time(7),
            "start": timezone.now() - dt.timedelta(days=1),
            "group": team,
            "template": MailTemplateFactory(
                owner_group=team,
                due_filter="due_overdue",
                add_attachment="report",
                export_type="excel",
            ),
            "smtp_configuration": configuration,
            "recipients": ["audience:matching_customers"],
        }
    )

    page.goto(f"{live_server.url}/actions/{action.pk}/run-now/")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    run = ActionRun.objects.get(action=action)
    # What the worker's tasks run, here in the test process: the run, then the delivery.
    runs.run_execute(run_id=run.pk)
    deliver_due(configuration_id=configuration.pk, worker_id="test")

    assert sorted(
        OutboxMessage.objects.filter(action=action).values_list("recipient", "status")
    ) == [("labor@k7001.example", "sent"), ("pruefmittel@k7002.example", "sent")]
    received = {tuple(message.recipients): message.message for message in smtp_server.messages}
    assert sorted(received) == [("labor@k7001.example",), ("pruefmittel@k7002.example",)]
    for (address,), message in received.items():
        assert report_numbers(message) == sorted(DUE[address])
