"""Test connection and send test mail, through the web pages, against the in-process server."""

import base64
import html
import re
import secrets

import pytest
from django.urls import reverse

from maillog.models import LogEntry
from smtpconfig.models import SmtpConfiguration
from tests.factories import SmtpConfigurationFactory


def english(client):
    client.post("/i18n/setlang/", {"language": "en"})
    return client


@pytest.mark.django_db
def test_test_connection_page_shows_verdict_and_transcript(
    client_for, admin, smtp_server_auth, smtp_credentials, settings
):
    settings.CALMAIL_SMTP_CA_FILE = str(smtp_server_auth.ca_file)
    configuration = SmtpConfigurationFactory(
        host=smtp_server_auth.host,
        port=smtp_server_auth.port,
        security="starttls",
        smtp_auth=True,
        username=smtp_credentials.username,
        password=smtp_credentials.password,
    )
    client = english(client_for(admin))

    response = client.post(
        reverse("smtpconfig:test", args=[configuration.pk]),
        {"sender": "labor@example.com", "recipient": "kunde@example.com"},
    )

    page = response.content.decode()
    report = response.context["report"]
    assert report.ok is True
    assert report.verdict in page
    assert "c: starttls" in page.lower()
    assert "rcpt to:&lt;kunde@example.com&gt;" in page.lower()
    assert smtp_server_auth.messages == []  # a probe, no DATA
    assert [(a.username, a.success) for a in smtp_server_auth.auth_attempts] == [("mailer", True)]
    secret = smtp_credentials.password
    encoded = base64.b64encode(f"\0mailer\0{secret}".encode()).decode()
    assert secret not in page and encoded not in page


@pytest.mark.django_db
def test_test_connection_page_wrong_password_plain_verdict(
    client_for, admin, smtp_server_auth, smtp_credentials, settings
):
    settings.CALMAIL_SMTP_CA_FILE = str(smtp_server_auth.ca_file)
    configuration = SmtpConfigurationFactory(
        host=smtp_server_auth.host,
        port=smtp_server_auth.port,
        security="starttls",
        smtp_auth=True,
        username="mailer",
        password="falsch",
    )
    client = english(client_for(admin))

    response = client.post(
        reverse("smtpconfig:test", args=[configuration.pk]),
        {"sender": "labor@example.com", "recipient": "kunde@example.com"},
    )

    assert response.context["report"].ok is False
    assert response.context["report"].verdict.startswith("Authentication failed: 535")
    assert "falsch" not in response.content.decode()


@pytest.mark.django_db
def test_send_test_mail_page_delivers_and_reports_reply(client_for, admin, smtp_server):
    configuration = SmtpConfigurationFactory(
        name="Plain", host=smtp_server.host, port=smtp_server.port, security="none"
    )
    client = english(client_for(admin))

    response = client.post(
        reverse("smtpconfig:test_mail", args=[configuration.pk]),
        {"sender": "labor@example.com", "recipient": "kunde@example.com"},
    )

    assert response.context["report"].ok is True
    assert "250" in response.context["report"].verdict
    [message] = smtp_server.messages
    assert (message.sender, message.recipients) == ("labor@example.com", ["kunde@example.com"])
    assert "Plain" in message.text


@pytest.mark.django_db
def test_send_test_mail_invalid_recipient_is_refused_by_the_form(client_for, admin, smtp_server):
    configuration = SmtpConfigurationFactory(
        host=smtp_server.host, port=smtp_server.port, security="none"
    )
    client = english(client_for(admin))

    response = client.post(
        reverse("smtpconfig:test_mail", args=[configuration.pk]),
        {"sender": "labor@example.com", "recipient": "kunde@example.com\r\nBcc: x@evil.com"},
    )

    assert response.context["report"] is None
    assert "Enter a valid email address." in response.content.decode()
    assert smtp_server.messages == []


@pytest.mark.django_db
def test_test_connection_forbidden_for_power_user(client_for, power_user, smtp_server):
    configuration = SmtpConfigurationFactory(
        host=smtp_server.host, port=smtp_server.port, security="none"
    )

    response = client_for(power_user).post(
        reverse("smtpconfig:test_mail", args=[configuration.pk]),
        {"sender": "labor@example.com", "recipient": "kunde@example.com"},
    )

    assert response.status_code == 403
    assert smtp_server.messages == []


@pytest.mark.django_db
def test_password_never_logged_on_save_and_failed_login(
    client_for, admin, smtp_server_auth, settings, caplog
):
    settings.CALMAIL_SMTP_CA_FILE = str(smtp_server_auth.ca_file)
    secret = "Nie-im-Log-42"
    client = english(client_for(admin))
    caplog.set_level("DEBUG")

    client.post(
        reverse("smtpconfig:create"),
        {
            "name": "Log-Test",
            "mailer": "smtp",
            "host": smtp_server_auth.host,
            "port": smtp_server_auth.port,
            "security": "starttls",
            "verify_certificate": "on",
            "timeout": "5",
            "smtp_auth": "on",
            "username": "mailer",
            "password": secret,
            "max_connections": "1",
            "max_messages_per_connection": "10",
        },
    )
    configuration = SmtpConfiguration.objects.get(name="Log-Test")
    response = client.post(
        reverse("smtpconfig:test", args=[configuration.pk]),
        {"sender": "labor@example.com", "recipient": "kunde@example.com"},
    )

    assert response.context["report"].verdict.startswith("Authentication failed: 535")
    assert "Connection test of SMTP configuration" in caplog.text
    assert "Authentication failed: 535" in caplog.text
    assert secret not in caplog.text
    assert base64.b64encode(secret.encode()).decode() not in caplog.text


def secret_forms(username: str, password: str) -> list[str]:
    """The password and its base64 forms (AUTH LOGIN, AUTH PLAIN), unpadded."""
    return [
        password,
        base64.b64encode(password.encode()).decode().rstrip("="),
        base64.b64encode(f"\0{username}\0{password}".encode()).decode().rstrip("="),
    ]


def leaked(text: str, username: str, password: str) -> list[str]:
    return [form for form in secret_forms(username, password) if form.lower() in text.lower()]


@pytest.mark.django_db
def test_test_connection_password_echoed_by_the_server_is_redacted_everywhere(
    client_for, admin, smtp_server_auth, settings, caplog
):
    # The server quotes the credentials it refuses (issue 12, item 9).
    settings.CALMAIL_SMTP_CA_FILE = str(smtp_server_auth.ca_file)
    smtp_server_auth.auth_failure_reply = (
        "535 5.7.8 Authentication failed for {username} {password}"
    )
    password = "Falsch-" + secrets.token_urlsafe(12)
    configuration = SmtpConfigurationFactory(
        host=smtp_server_auth.host,
        port=smtp_server_auth.port,
        security="starttls",
        smtp_auth=True,
        username="mailer",
        password=password,
    )
    client = english(client_for(admin))
    caplog.set_level("DEBUG")

    response = client.post(
        reverse("smtpconfig:test", args=[configuration.pk]),
        {"sender": "labor@example.com", "recipient": "kunde@example.com"},
    )
    entry = LogEntry.objects.get(object_id=configuration.pk, message__startswith="Connection test")
    export = client.get(reverse("maillog:list"), {"_export": "csv"})
    export_text = b"".join(export.streaming_content).decode("utf-8-sig")
    # Closing the response ends the request, and with it the database connection.
    export.close()

    expected_verdict = "Authentication failed: 535 5.7.8 Authentication failed for mailer ********"
    page = html.unescape(response.content.decode())
    verdict = re.search(r'data-testid="verdict">(.*?)</div>', page, re.DOTALL).group(1)
    assert verdict.split("</i>")[1].strip() == expected_verdict
    assert "S: 535 5.7.8 Authentication failed for mailer ********" in page
    assert [a.success for a in smtp_server_auth.auth_attempts] == [False, False]
    assert entry.details["verdict"] == expected_verdict
    assert entry.details["reply_code"] == 535
    assert entry.details["reply_text"] == "5.7.8 Authentication failed for mailer ********"
    assert expected_verdict in entry.search_text
    assert expected_verdict in export_text
    assert f"Connection test of SMTP configuration #{configuration.pk}" in caplog.text
    assert expected_verdict in caplog.text
    everything = {
        "page": page,
        "details": str(entry.details),
        "search_text": entry.search_text,
        "export": export_text,
        "logging": caplog.text,
    }
    assert {name: leaked(text, "mailer", password) for name, text in everything.items()} == {
        name: [] for name in everything
    }
