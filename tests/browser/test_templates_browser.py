"""Templates end to end: build a reminder template, preview it for a customer, download the
Excel attachment exactly as the mail would carry it."""

import datetime

import openpyxl
import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import expect

from calmail.common.roles import ADMINISTRATOR
from templates_app.models import MailTemplate
from tests.browser.recipient_picker import chip, pick
from tests.factories import CustomerFactory, InstrumentFactory

PASSWORD = "correct horse battery staple"


@pytest.fixture
def administrator(django_user_model):
    user = django_user_model.objects.create_user(
        username="ada", password=PASSWORD, email="ada@example.com"
    )
    user.groups.add(Group.objects.get(name=ADMINISTRATOR))
    return user


@pytest.fixture
def customer(transactional_db):
    customer = CustomerFactory(number="4711", name="Muster Messtechnik GmbH", language="de")
    today = timezone.localdate()
    # Due in ten days, overdue since five days, and one not due for half a year.
    for number, days in (("INV-DUE", 10), ("INV-LATE", -5), ("INV-LATER", 180)):
        due = today + datetime.timedelta(days=days)
        InstrumentFactory(
            inventory_number=number,
            description="Digitalmultimeter",
            customer=customer,
            last_calibration=due - datetime.timedelta(days=365),
            calibration_interval_months=12,
        )
    return customer


def test_template_create_preview_and_download_excel(
    page, live_server, login, administrator, customer, tmp_path
):
    login(administrator, PASSWORD)

    page.goto(f"{live_server.url}/templates/")
    with page.expect_navigation():
        page.click("a[href='/templates/new/']")
    page.fill("input[name=name]", "Kalibriererinnerung")
    page.select_option("select[name=template_type]", "inventory")
    page.select_option("select[name=report]", "instruments_due")
    page.select_option("select[name=add_attachment]", "report")
    page.select_option("select[name=due_filter]", "due_overdue")
    page.select_option("select[name=export_type]", "excel")
    page.fill("input[name=from_email]", "labor@calserver.example")
    page.fill("input[name=subject_de]", "{{ count }} Prüfmittel für {{ customer.name }} fällig")
    page.fill(
        "textarea[name=body_html_de]",
        "<p>Guten Tag,</p>\n<ul>{% for row in rows %}<li>{{ row.inventory_number }}</li>{% endfor %}</ul>",
    )
    page.screenshot(path="var/test/template-form.png", full_page=True)
    with page.expect_navigation():
        page.click("#submit-id-submit")

    template = MailTemplate.objects.get(name="Kalibriererinnerung")
    expect(page).to_have_url(f"{live_server.url}/templates/{template.pk}/preview/")

    # The recipient field suggests matches from the recipient search; it holds one.
    page.fill("#id_recipient_search", "Muster Messtechnik")
    expect(page.locator("[data-token-box=recipient] [data-option]")).to_have_count(1)
    pick(page, "recipient", "Muster Messtechnik", "Muster Messtechnik GmbH")
    expect(page.locator("input[name=recipient]")).to_have_value(f"customer:{customer.pk}")
    with page.expect_navigation():
        page.click("form[data-testid=preview-form] button[type=submit]")
    # Shown again by its name, not its token.
    expect(chip(page, "recipient", "Muster Messtechnik GmbH")).to_be_visible()

    expect(page.locator("[data-testid=subject]")).to_have_text(
        "2 Prüfmittel für Muster Messtechnik GmbH fällig"
    )
    expect(page.locator("[data-testid=row-count]")).to_have_text("2")
    frame = page.frame_locator("[data-testid=body-frame]")
    expect(frame.locator("li")).to_have_text(["INV-LATE", "INV-DUE"])
    expect(page.locator("[data-testid=body-text]")).to_contain_text("- INV-LATE")

    with page.expect_download() as download_info:
        page.click("[data-testid=attachment-download]")
    download = download_info.value
    path = tmp_path / download.suggested_filename
    download.save_as(path)

    assert download.suggested_filename.endswith(f"-{timezone.localdate().isoformat()}.xlsx")
    sheet = openpyxl.load_workbook(path).active
    rows = list(sheet.iter_rows(values_only=True))
    assert [row[0] for row in rows[1:]] == ["INV-LATE", "INV-DUE"]
    assert rows[1][1] == "Digitalmultimeter"
    assert rows[1][5] == "4711 · Muster Messtechnik GmbH"
    page.screenshot(path="var/test/template-preview.png", full_page=True)
