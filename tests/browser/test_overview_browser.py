"""The overview in Chromium: the landing page after login, its chart, its links."""

import datetime as dt
import re

import pytest
import time_machine
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from calmail.common.roles import ADMINISTRATOR
from mailbox.models import Status
from tests.factories import DeliveryAttemptFactory, OutboxMessageFactory, SmtpConfigurationFactory

PASSWORD = "correct horse battery staple"
# Midday in Berlin: "today" is the same date in UTC and locally, whatever the real clock.
NOON = dt.datetime(2026, 6, 10, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOON, tick=True):
        yield


@pytest.fixture
def administrator(django_user_model, clock):
    user = django_user_model.objects.create_user(username="ada", password=PASSWORD)
    user.groups.add(Group.objects.get(name=ADMINISTRATOR))
    return user


def test_overview_after_login_shows_chart_and_links_into_the_filtered_outbox(
    page, live_server, login, administrator
):
    server = SmtpConfigurationFactory(name="Hauptserver")
    sent = OutboxMessageFactory(
        subject="Kalibrierschein verschickt",
        status=Status.SENT,
        sent_at=NOON - dt.timedelta(minutes=5),
        smtp_configuration=server,
    )
    failed = OutboxMessageFactory(
        subject="Kalibrierschein abgelehnt", status=Status.FAILED, smtp_configuration=server
    )
    DeliveryAttemptFactory(message=failed, outcome="failed", started_at=NOON)

    login(administrator, PASSWORD)

    expect(page).to_have_url(f"{live_server.url}/overview/")
    nav_link = page.locator("nav a.nav-link").first
    expect(nav_link).to_have_attribute("href", "/overview/")
    expect(nav_link).to_have_attribute("aria-current", "page")
    chart = page.locator("svg[data-testid=chart-days]")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.sent")).to_have_count(1)
    expect(chart.locator("rect.failed")).to_have_count(1)
    expect(page.locator("svg[data-testid=chart-hours]")).to_be_visible()
    expect(page.locator("[data-testid=attention-failed]")).to_be_visible()

    with page.expect_navigation():
        page.click("[data-testid=figure-sent-1]")

    expect(page).to_have_url(
        re.compile(rf"{re.escape(live_server.url)}/outbox/\?status=sent&created_at_min=2026-06-10$")
    )
    expect(page.locator("#id_status")).to_have_value("sent")
    expect(page.get_by_role("link", name=sent.subject, exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=failed.subject, exact=True)).to_have_count(0)
