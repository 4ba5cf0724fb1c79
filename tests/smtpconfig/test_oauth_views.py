"""The OAuth sign-in on the configuration pages: the form, the warning for Exchange Online
with a password, and that no secret reaches a page, an export, the Log or the log file."""

from __future__ import annotations

import io
import logging

import openpyxl
import pytest
from django.urls import reverse

from maillog.models import LogEntry
from smtpconfig.models import AuthMethod, SmtpConfiguration
from tests.csv_export import read_csv
from tests.factories import SmtpConfigurationFactory

pytestmark = pytest.mark.django_db


def form_data(**overrides):
    data = {
        "name": "Exchange Online",
        "mailer": "smtp",
        "host": "",
        "port": "587",
        "security": "starttls",
        "verify_certificate": "on",
        "timeout": "10",
        "smtp_auth": "on",
        "auth_method": "microsoft",
        "username": "labor@example.com",
        "oauth_tenant_id": "8f2b1c9e-tenant",
        "oauth_client_id": "0d6c3a52-app",
        "oauth_client_secret": "Q~very-secret-value",
        "from_email": "labor@example.com",
        "max_connections": "3",
        "max_messages_per_connection": "100",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def english(client):
    client.post("/i18n/setlang/", {"language": "en"})
    return client


def test_create_microsoft_fills_the_server_and_keeps_the_secret_encrypted(client_for, admin):
    response = client_for(admin).post(reverse("smtpconfig:create"), form_data())

    configuration = SmtpConfiguration.objects.get()
    assert response.status_code == 302
    assert (configuration.host, configuration.port, configuration.security) == (
        "smtp.office365.com",
        587,
        "starttls",
    )
    assert configuration.auth_method == AuthMethod.MICROSOFT
    assert configuration.oauth_client_secret == "Q~very-secret-value"
    assert configuration.password == ""


def test_microsoft_needs_tenant_client_and_a_secret(client_for, admin):
    response = english(client_for(admin)).post(
        reverse("smtpconfig:create"),
        form_data(oauth_tenant_id="", oauth_client_id="", oauth_client_secret=""),
    )

    errors = response.context["form"].errors
    assert errors["oauth_tenant_id"] == ["Enter the directory (tenant) ID."]
    assert errors["oauth_client_id"] == ["Enter the client ID."]
    assert errors["oauth_client_secret"] == [
        "Enter a client secret or a certificate of the app registration."
    ]
    assert SmtpConfiguration.objects.count() == 0


def test_google_key_must_be_a_service_account_key(client_for, admin):
    response = english(client_for(admin)).post(
        reverse("smtpconfig:create"),
        form_data(auth_method="google", oauth_service_account='{"type": "user"}'),
    )

    assert (
        response.context["form"]
        .errors["oauth_service_account"][0]
        .startswith("This is not a service account key")
    )


def test_switching_to_oauth_drops_the_stored_password(client_for, admin):
    configuration = SmtpConfigurationFactory(
        host="smtp.office365.com", smtp_auth=True, username="labor@example.com", password="pw-123"
    )

    client_for(admin).post(
        reverse("smtpconfig:update", args=[configuration.pk]),
        form_data(name=configuration.name, host="smtp.office365.com"),
    )

    configuration.refresh_from_db()
    assert configuration.auth_method == AuthMethod.MICROSOFT
    assert configuration.password == ""
    entry = LogEntry.objects.filter(audit_action="updated").latest("pk")
    assert entry.changes["password"] == entry.changes["oauth_client_secret"]
    assert "pw-123" not in str(entry.changes)
    assert "Q~very-secret-value" not in str(entry.changes)


def test_blank_secret_keeps_the_stored_one(client_for, admin):
    client = client_for(admin)
    client.post(reverse("smtpconfig:create"), form_data())
    configuration = SmtpConfiguration.objects.get()

    client.post(
        reverse("smtpconfig:update", args=[configuration.pk]),
        form_data(oauth_client_secret="", host="smtp.office365.com"),
    )

    configuration.refresh_from_db()
    assert configuration.oauth_client_secret == "Q~very-secret-value"


def test_secrets_never_reach_pages_exports_or_logs(client_for, admin, caplog):
    caplog.set_level(logging.DEBUG)
    client = english(client_for(admin))
    certificate = (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    )
    client.post(reverse("smtpconfig:create"), form_data())
    microsoft = SmtpConfiguration.objects.get()
    google = SmtpConfigurationFactory(
        name="Workspace",
        smtp_auth=True,
        auth_method="google",
        username="labor@example.com",
        oauth_service_account='{"type": "service_account", "private_key": "KEY-MATERIAL-42"}',
    )
    secrets = ["Q~very-secret-value", "KEY-MATERIAL-42", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"]

    pages = [
        client.get(reverse("smtpconfig:list")).content.decode(),
        client.get(reverse("smtpconfig:detail", args=[microsoft.pk])).content.decode(),
        client.get(reverse("smtpconfig:update", args=[microsoft.pk])).content.decode(),
        client.get(reverse("smtpconfig:detail", args=[google.pk])).content.decode(),
        client.get(reverse("smtpconfig:update", args=[google.pk])).content.decode(),
    ]
    response = client.get(reverse("smtpconfig:list"), {"_export": "csv"})
    csv_text = b"".join(response.streaming_content).decode("utf-8-sig")
    response = client.get(reverse("smtpconfig:list"), {"_export": "xlsx"})
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    xlsx_text = str([[cell.value for cell in row] for row in sheet.iter_rows()])
    log_text = str(list(LogEntry.objects.values_list("message", "params", "changes")))

    shown = "\n".join([*pages, csv_text, xlsx_text, log_text, caplog.text])
    for secret in [*secrets, certificate]:
        assert secret not in shown
    rows = read_csv(csv_text)
    smtp_auth = rows[0].index("SMTP auth")
    assert sorted(row[smtp_auth] for row in rows[1:]) == [
        "yes (OAuth 2.0: Google Workspace)",
        "yes (OAuth 2.0: Microsoft 365)",
    ]
    assert "Stored: leave blank to keep it" in pages[2]
    assert 'data-auth-methods="microsoft"' in pages[2]
    assert "smtpconfig/smtpconfig.js" in pages[2]


def test_password_on_exchange_online_warns_with_a_link_to_switch(client_for, admin):
    retiring = SmtpConfigurationFactory(
        host="SMTP.office365.com", smtp_auth=True, username="a@example.com", password="pw"
    )
    SmtpConfigurationFactory(host="mail.example.com", smtp_auth=True, username="a", password="pw")
    client = english(client_for(admin))

    detail = client.get(reverse("smtpconfig:detail", args=[retiring.pk])).content.decode()
    listing = client.get(reverse("smtpconfig:list")).content.decode()

    edit = reverse("smtpconfig:update", args=[retiring.pk])
    assert "Microsoft is switching off password sign-in — switch to OAuth." in detail
    assert f'href="{edit}#authentication"' in detail
    assert listing.count('data-testid="oauth-warning"') == 1
    assert f'href="{edit}"' in listing


def test_outsider_cannot_open_the_form(client_for, outsider):
    response = client_for(outsider).get(reverse("smtpconfig:create"))

    assert response.status_code == 403
    assert SmtpConfiguration.objects.count() == 0
