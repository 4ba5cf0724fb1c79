"""Wide tables in Chromium at 1,366 px: the column chooser (remembered after a reload), the
outbox's default columns without a horizontal scroll bar, row menus inside the viewport."""

import datetime as dt
import struct

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import expect

from calmail.common.roles import ADMINISTRATOR
from mailbox.models import Status
from tests.factories import OutboxMessageFactory, SmtpConfigurationFactory

PASSWORD = "correct horse battery staple"
WIDTH, HEIGHT = 1366, 768
OUTBOX = "/outbox/"

ERRORS = [
    "550 5.1.1 <einkauf.qualitaetssicherung@mueller-messtechnik-gmbh.de>: Recipient address "
    "rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)",
    "421 4.7.0 Too many concurrent SMTP connections from this IP address; please try again "
    "later, the server is busy delivering other mail",
    "Connection refused: mail.kunde-beispiel.de:587 did not answer within 30 seconds",
]


@pytest.fixture
def administrator(django_user_model):
    user = django_user_model.objects.create_user(username="ada", password=PASSWORD)
    user.groups.add(Group.objects.get(name=ADMINISTRATOR))
    return user


@pytest.fixture
def mails(db):
    """Three dozen mails as a busy installation has them: long subjects, recipients,
    action names and error texts, every status."""
    server = SmtpConfigurationFactory(name="Hauptserver")
    now = timezone.now()
    statuses = list(Status)
    created = []
    for n in range(36):
        status = statuses[n % len(statuses)]
        created.append(
            OutboxMessageFactory(
                smtp_configuration=server,
                source="action",
                source_label=f"Kalibrier-Erinnerung monatlich für Kunden der Region Nord {n}",
                recipient=f"einkauf.qualitaetssicherung{n}@mueller-messtechnik-gmbh.de",
                recipient_owner=f"Müller Messtechnik GmbH & Co. KG, Werk {n} · Bericht: alle Kunden",
                subject=(
                    f"Kalibrierung fällig: 14 Prüfmittel (Messschieber, Drehmomentschlüssel, "
                    f"Manometer) im Werk {n} bis Ende des Monats"
                ),
                parameters={
                    "template": "Kalibrier-Erinnerung",
                    "language": "de",
                    "report": "due-instruments",
                    "rows": 14,
                    "report_scope": "alle Kunden (intern)",
                },
                attachment_count=n % 4,
                status=status,
                sent_at=now - dt.timedelta(minutes=n) if status == Status.SENT else None,
                error_message=ERRORS[n % len(ERRORS)]
                if status in (Status.FAILED, Status.DEFERRED)
                else "",
            )
        )
    return created


def outbox(page, live_server, login, administrator):
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    login(administrator, PASSWORD)
    page.goto(f"{live_server.url}{OUTBOX}")


def headers(page) -> list[str]:
    return [text.strip() for text in page.locator("table.calmail-table thead th").all_inner_texts()]


def test_column_chooser_hides_and_shows_columns_and_remembers_them(
    page, live_server, login, administrator, mails
):
    outbox(page, live_server, login, administrator)
    assert "Fehlermeldung" in headers(page)
    assert "Parameter" not in headers(page)
    chooser = page.locator("[data-testid=column-chooser]")
    panel = chooser.locator("form")
    expect(panel).to_be_hidden()

    chooser.locator("summary").click()
    expect(panel).to_be_visible()
    # Closes like a menu (column-chooser.js): Escape, and a click outside.
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    chooser.locator("summary").click()
    page.locator("h1").click()
    expect(panel).to_be_hidden()

    chooser.locator("summary").click()
    panel.get_by_label("Parameter", exact=True).check()
    panel.get_by_label("Fehlermeldung", exact=True).uncheck()
    with page.expect_navigation():
        panel.locator("button[type=submit]:not([name])").click()

    expect(page).to_have_url(f"{live_server.url}{OUTBOX}")
    assert "Parameter" in headers(page)
    assert "Fehlermeldung" not in headers(page)
    expect(
        page.locator("td").filter(has_text="Vorlage: Kalibrier-Erinnerung").first
    ).to_be_visible()

    page.reload()

    assert "Parameter" in headers(page)
    assert "Fehlermeldung" not in headers(page)
    chooser.locator("summary").click()
    expect(panel.get_by_label("Parameter", exact=True)).to_be_checked()
    expect(panel.get_by_label("Fehlermeldung", exact=True)).not_to_be_checked()

    with page.expect_navigation():
        panel.locator("button[name=reset]").click()

    assert "Fehlermeldung" in headers(page)
    assert "Parameter" not in headers(page)


def _png_size(data: bytes) -> tuple[int, int]:
    # PNG: 8-byte signature, then the IHDR chunk whose data starts with width and height.
    return struct.unpack(">II", data[16:24])


def test_outbox_default_columns_fit_1366_px(page, live_server, login, administrator, mails):
    outbox(page, live_server, login, administrator)
    expect(page.locator("table.calmail-table tbody tr")).to_have_count(25)

    sizes = page.evaluate(
        """() => {
            const root = document.documentElement;
            const wrapper = document.querySelector("table.calmail-table").parentElement;
            return {
                pageScroll: root.scrollWidth, pageClient: root.clientWidth,
                tableScroll: wrapper.scrollWidth, tableClient: wrapper.clientWidth,
            };
        }"""
    )
    width, _height = _png_size(page.screenshot(full_page=True))

    assert sizes["pageScroll"] <= sizes["pageClient"], sizes
    # The table's own scroll container (table-responsive) must not scroll sideways either.
    assert sizes["tableScroll"] <= sizes["tableClient"], sizes
    assert width == WIDTH
    # The columns the issue asks for are all on screen.
    assert headers(page)[1:-1] == [
        "Mailaktion",
        "Empfänger",
        "Anhänge",
        "Status",
        "gesendet",
        "Fehlermeldung",
        "Nachrichteninhalt",
    ]
    for header in page.locator("table.calmail-table thead th").all():
        box = header.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, header.inner_text()


def test_last_rows_menu_is_inside_the_viewport(page, live_server, login, administrator, mails):
    outbox(page, live_server, login, administrator)
    toggle = page.locator("table.calmail-table tbody tr").last.locator("[data-bs-toggle=dropdown]")
    toggle.scroll_into_view_if_needed()

    toggle.click()

    menu = page.locator("table.calmail-table tbody tr").last.locator(".dropdown-menu")
    expect(menu).to_be_visible()
    box = menu.bounding_box()
    viewport = page.viewport_size
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= viewport["width"], box
    assert box["y"] + box["height"] <= viewport["height"], box
    # Every entry can be clicked: nothing covers it, nothing clips it.
    for item in menu.locator(".dropdown-item").all():
        expect(item).to_be_in_viewport()
