"""Audiences end to end in Chromium: an action for "customers with matching records" made
with one chip, its live audience preview, a run now, and the figures in the run history."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.utils import translation
from django.utils.translation import ngettext
from playwright.sync_api import expect

from actions import runs
from actions.models import Action, ActionRun
from calmail.common.roles import POWER_USER
from inventory.recipients import (
    AUDIENCE_DETAILS,
    AUDIENCE_LABELS,
    KIND_LABELS,
    AudienceKind,
    TokenKind,
)
from mailbox.models import OutboxMessage
from tests.browser.recipient_picker import chip, pick
from tests.factories import (
    CustomerFactory,
    InstrumentFactory,
    MailTemplateFactory,
    SmtpConfigurationFactory,
)

PASSWORD = "correct horse battery staple"
# A Monday, midday in Berlin: the same date in UTC and locally, whatever the real clock.
NOON = dt.datetime(2026, 3, 2, 11, 0, tzinfo=dt.UTC)
MATCHING = "audience:matching_customers"


@pytest.fixture
def clock():
    with time_machine.travel(NOON, tick=True):
        yield


def german(text: str) -> str:
    """The page's words (the browser asks for German); English until translated."""
    with translation.override("de"):
        return str(text)


def test_action_for_customers_with_matching_records(
    page, live_server, login, django_user_model, clock
):
    team = Group.objects.create(name="Kalibrierlabor")
    user = django_user_model.objects.create_user(username="paula", password=PASSWORD)
    user.groups.add(Group.objects.get(name=POWER_USER), team)
    SmtpConfigurationFactory(name="Labor-Server", is_default=True)
    template = MailTemplateFactory(
        name="Fällige Prüfmittel", owner_group=team, due_filter="due_overdue"
    )
    # 6001 has two overdue instruments, 6002 one; 6003's falls due only next year.
    customers = [
        CustomerFactory(number=number, emails=[f"labor@k{number}.example"])
        for number in ("6001", "6002", "6003")
    ]
    for customer, last_calibration in [
        (customers[0], dt.date(2025, 1, 10)),
        (customers[0], dt.date(2025, 2, 10)),
        (customers[1], dt.date(2025, 1, 20)),
        (customers[2], dt.date(2026, 2, 10)),
    ]:
        InstrumentFactory(customer=customer, last_calibration=last_calibration)
    login(user, PASSWORD)
    page.set_viewport_size({"width": 1366, "height": 900})

    page.goto(f"{live_server.url}/actions/new/")
    page.fill("input[name=description]", "Monatliche Erinnerung")
    page.click("label[for=id_days_0]")
    page.fill("input[name=time_of_day]", "07:00")
    page.fill("input[name=start]", "2026-03-01T00:00")
    # The report's customers only show while "chosen customers" is picked.
    scope_customers = page.locator("#div_id_report_scope_customers")
    expect(scope_customers).to_be_hidden()
    page.check("input[name=report_scope][value=customers]")
    expect(scope_customers).to_be_visible()
    page.check("input[name=report_scope][value=none]")
    expect(scope_customers).to_be_hidden()

    page.select_option("select[name=template]", str(template.pk))
    kind = AudienceKind.MATCHING_CUSTOMERS
    label = german(AUDIENCE_LABELS[kind])
    pick(page, "recipients", label, label)
    # Shown like the other chips: the label, and the kind with what it means on hover.
    expect(chip(page, "recipients", label)).to_have_attribute(
        "title", f"{german(KIND_LABELS[TokenKind.AUDIENCE])}: {german(AUDIENCE_DETAILS[kind])}"
    )
    expect(page.locator("input[name=recipients]")).to_have_value(MATCHING)

    # The live preview: the next run (1 April) mails the two customers with due instruments.
    audience = page.locator("#audience-preview")
    mails = audience.locator("[data-audience-mails]")
    expect(mails).to_have_attribute("data-audience-mails", "2")
    with translation.override("de"):
        expect(mails).to_have_text(
            ngettext("Next run: %(count)s mail", "Next run: %(count)s mails", 2) % {"count": 2}
        )
    rows = audience.locator("[data-audience-recipients] tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("labor@k6001.example")
    expect(rows.nth(0).locator("td").last).to_have_text("2")
    expect(rows.nth(1)).to_contain_text("labor@k6002.example")
    expect(rows.nth(1).locator("td").last).to_have_text("1")

    # A typed address gets no report (scope: no report), so it is skipped and says why …
    page.fill("#id_recipients_search", "ops@example.com")
    page.press("#id_recipients_search", "Enter")
    expect(audience.locator("[data-audience-skipped] li")).to_contain_text(["ops@example.com"])
    expect(mails).to_have_attribute("data-audience-mails", "2")
    # … unless the mail may go without its attachment.
    page.check("input[name=send_without_attachments]")
    expect(mails).to_have_attribute("data-audience-mails", "3")
    expect(audience.locator("[data-audience-skipped]")).to_have_count(0)
    page.uncheck("input[name=send_without_attachments]")
    chip(page, "recipients", "ops@example.com").locator("button").click()
    expect(mails).to_have_attribute("data-audience-mails", "2")
    expect(audience.locator("[data-audience-skipped]")).to_have_count(0)

    page.select_option("select[name=group]", str(team.pk))
    with page.expect_navigation():
        page.click("input[name=submit]")
    action = Action.objects.get()
    assert (action.recipients, action.report_scope) == ([MATCHING], "none")

    page.goto(f"{live_server.url}/actions/{action.pk}/run-now/")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    run = ActionRun.objects.get()
    # What the worker's task runs, here in the test process.
    runs.run_execute(run_id=run.pk)

    page.reload()
    cell = page.locator("table tbody tr").first.locator("td").last
    with translation.override("de"):
        expect(cell).to_contain_text(
            ngettext("%(count)s mail", "%(count)s mails", 2) % {"count": 2}
        )
        two_rows = ngettext("%(count)s row", "%(count)s rows", 2) % {"count": 2}
        one_row = ngettext("%(count)s row", "%(count)s rows", 1) % {"count": 1}
    expect(cell.locator("li")).to_have_text(
        [
            f"labor@k6001.example ({customers[0].label}): {two_rows}",
            f"labor@k6002.example ({customers[1].label}): {one_row}",
        ]
    )
    assert sorted(
        OutboxMessage.objects.filter(action=action).values_list("recipient", flat=True)
    ) == ["labor@k6001.example", "labor@k6002.example"]
