"""A Microsoft 365 configuration with OAuth 2.0, end to end in Chromium: the form shows
only the method's fields and fills in Microsoft's server, then the connection test and a
test mail go through the fake identity provider and the XOAUTH2 test server."""

import re

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from calmail.common.roles import ADMINISTRATOR
from smtpconfig.models import AuthMethod, SmtpConfiguration

PASSWORD = "correct horse battery staple"


@pytest.fixture
def administrator(django_user_model):
    user = django_user_model.objects.create_user(
        username="ada", password=PASSWORD, email="ada@example.com"
    )
    user.groups.add(Group.objects.get(name=ADMINISTRATOR))
    return user


def test_microsoft_365_configuration_tests_and_sends(
    page, live_server, login, administrator, smtp_server_oauth, identity_provider
):
    login(administrator, PASSWORD)
    page.goto(f"{live_server.url}/smtp/new/")

    # Without SMTP auth no sign-in field shows; the password belongs to "password" only.
    expect(page.locator("select[name=auth_method]")).to_be_hidden()
    page.check("input[name=smtp_auth]")
    expect(page.locator("input[name=password]")).to_be_visible()
    expect(page.locator("input[name=oauth_tenant_id]")).to_be_hidden()
    page.select_option("select[name=auth_method]", "microsoft")
    expect(page.locator("input[name=password]")).to_be_hidden()
    expect(page.locator("input[name=oauth_tenant_id]")).to_be_visible()
    expect(page.locator("textarea[name=oauth_service_account]")).to_be_hidden()
    expect(page.locator("input[name=host]")).to_have_value("smtp.office365.com")
    expect(page.locator("input[name=port]")).to_have_value("587")
    expect(page.locator("select[name=security]")).to_have_value("starttls")

    # The fakes stand in for Exchange Online.
    page.fill("input[name=name]", "Exchange Online")
    page.fill("input[name=host]", smtp_server_oauth.host)
    page.fill("input[name=port]", str(smtp_server_oauth.port))
    page.fill("input[name=username]", "labor@example.com")
    page.fill("input[name=oauth_tenant_id]", identity_provider.tenant)
    page.fill("input[name=oauth_client_id]", identity_provider.client_id)
    page.fill("input[name=oauth_client_secret]", identity_provider.client_secret)
    page.fill("input[name=from_email]", "labor@example.com")
    with page.expect_navigation():
        page.click("#submit-id-submit")

    configuration = SmtpConfiguration.objects.get(name="Exchange Online")
    assert configuration.auth_method == AuthMethod.MICROSOFT
    assert configuration.password == ""
    expect(page).to_have_url(f"{live_server.url}/smtp/{configuration.pk}/")
    expect(page.locator("[data-testid=sign-in-method]")).to_contain_text("Microsoft 365")
    assert identity_provider.client_secret not in page.content()

    with page.expect_navigation():
        page.click(f"a[href='/smtp/{configuration.pk}/test/']")
    with page.expect_navigation():
        page.click("#submit-id-submit")

    verdict = page.locator("[data-testid=verdict]")
    expect(verdict).to_have_class(re.compile(r"alert-success"))
    transcript = page.locator("[data-testid=transcript]")
    expect(transcript).to_contain_text(f"127.0.0.1:{identity_provider.port}")
    expect(transcript).to_contain_text("SMTP.SendAsApp")
    expect(transcript).to_contain_text("AUTH XOAUTH2 ********")
    expect(transcript).to_contain_text("235")
    token = configuration.oauth_token.access_token
    assert token not in page.content()
    assert identity_provider.client_secret not in page.content()
    page.screenshot(path="var/test/smtp-oauth-test-connection.png", full_page=True)

    page.goto(f"{live_server.url}/smtp/{configuration.pk}/test-mail/")
    with page.expect_navigation():
        page.click("#submit-id-submit")

    expect(page.locator("[data-testid=verdict]")).to_have_class(re.compile(r"alert-success"))
    assert [message.recipients for message in smtp_server_oauth.messages] == [["ada@example.com"]]
    assert [(a.mechanism, a.success) for a in smtp_server_oauth.auth_attempts] == [
        ("XOAUTH2", True),
        ("XOAUTH2", True),
    ]
    # The connection test asked for a fresh token; the test mail took it from the cache.
    assert len(identity_provider.token_requests) == 1
