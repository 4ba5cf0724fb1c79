"""SMTP configurations end to end: create, test against the in-process server, switch language."""

import re

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from calmail.common.roles import ADMINISTRATOR
from smtpconfig.models import SmtpConfiguration

PASSWORD = "correct horse battery staple"


@pytest.fixture
def administrator(django_user_model):
    user = django_user_model.objects.create_user(
        username="ada", password=PASSWORD, email="ada@example.com"
    )
    user.groups.add(Group.objects.get(name=ADMINISTRATOR))
    return user


def test_smtp_create_test_connection_and_switch_language(
    page, live_server, login, administrator, smtp_server_auth, smtp_credentials, settings
):
    settings.CALMAIL_SMTP_CA_FILE = str(smtp_server_auth.ca_file)
    login(administrator, PASSWORD)

    page.goto(f"{live_server.url}/smtp/")
    with page.expect_navigation():
        page.click("a[href='/smtp/new/']")
    page.fill("input[name=name]", "Kalibrierlabor")
    page.fill("input[name=host]", smtp_server_auth.host)
    page.fill("input[name=port]", str(smtp_server_auth.port))
    page.select_option("select[name=security]", "starttls")
    page.check("input[name=smtp_auth]")
    page.fill("input[name=username]", smtp_credentials.username)
    page.fill("input[name=password]", smtp_credentials.password)
    page.fill("input[name=from_email]", "labor@example.com")
    with page.expect_navigation():
        page.click("#submit-id-submit")

    configuration = SmtpConfiguration.objects.get(name="Kalibrierlabor")
    assert configuration.is_default is True
    assert configuration.password == smtp_credentials.password
    expect(page).to_have_url(f"{live_server.url}/smtp/{configuration.pk}/")
    expect(page.locator("h1")).to_contain_text("Kalibrierlabor")
    assert smtp_credentials.password not in page.content()

    with page.expect_navigation():
        page.click(f"a[href='/smtp/{configuration.pk}/test/']")
    expect(page.locator("input[name=sender]")).to_have_value("labor@example.com")
    expect(page.locator("input[name=recipient]")).to_have_value("ada@example.com")
    with page.expect_navigation():
        page.click("#submit-id-submit")

    verdict = page.locator("[data-testid=verdict]")
    expect(verdict).to_have_class(re.compile(r"alert-success"))
    expect(verdict).to_contain_text("Verbindung OK")
    expect(page.locator("[data-testid=transcript]")).to_contain_text("250")
    assert smtp_credentials.password not in page.content()
    assert [(a.username, a.success) for a in smtp_server_auth.auth_attempts] == [("mailer", True)]
    page.screenshot(path="var/test/smtp-test-connection.png", full_page=True)

    with page.expect_navigation():
        page.click("button[name=language][value=en]")

    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Test connection: Kalibrierlabor")
    with page.expect_navigation():
        page.click("#submit-id-submit")
    expect(page.locator("[data-testid=verdict]")).to_contain_text("Connection OK")
