"""Compose in Chromium: the From address follows a change of SMTP configuration unless
the user typed their own."""

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from calmail.common.roles import POWER_USER
from tests.factories import SmtpConfigurationFactory

PASSWORD = "correct horse battery staple"


@pytest.fixture
def composer(django_user_model):
    user = django_user_model.objects.create_user(
        username="paula", password=PASSWORD, email="paula@example.com", first_name="Paula"
    )
    user.groups.add(Group.objects.get(name=POWER_USER))
    return user


def test_sender_follows_the_chosen_configuration(page, live_server, login, composer):
    first = SmtpConfigurationFactory(
        name="A Labor", is_default=True, from_email="labor@calserver.example"
    )
    second = SmtpConfigurationFactory(name="B Service", from_email="service@calserver.example")
    login(composer, PASSWORD)
    page.goto(f"{live_server.url}/compose/")
    select = page.locator("select[name=smtp_configuration]")
    sender = page.locator("input[name=from_email]")
    expect(select).to_have_value(str(first.pk))
    expect(sender).to_have_value("labor@calserver.example")

    select.select_option(str(second.pk))
    expect(sender).to_have_value("service@calserver.example")
    select.select_option(str(first.pk))
    expect(sender).to_have_value("labor@calserver.example")

    # An address of the user's own stays whatever configuration is chosen.
    sender.fill("paula@calserver.example")
    select.select_option(str(second.pk))
    expect(sender).to_have_value("paula@calserver.example")
