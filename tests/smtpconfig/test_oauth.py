"""OAuth 2.0 sign-in (AUTH XOAUTH2) for Microsoft 365, Google Workspace and any
client-credentials provider, against tests/smtp_server.py's fake identity provider (HTTPS
with the test CA) and its SMTP server, which accepts only that provider's live tokens."""

from __future__ import annotations

import base64
import io
import logging
import threading
from datetime import timedelta

import pytest
import time_machine
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone

from mailbox.models import OutboxMessage, Status
from smtpconfig.models import AuthMethod, OAuthToken, SmtpConfiguration
from smtpconfig.transport import (
    MASK,
    TokenRefused,
    TokenServiceUnavailable,
    get_access_token,
    open_session,
    send_test_mail,
    test_connection,
)
from smtpconfig.transport.oauth import sasl_xoauth2
from tests.factories import OutboxMessageFactory
from tests.smtp_server import oauth_configuration

SENDER = "labor@example.com"
RECIPIENT = "kunde@example.com"
METHODS = [AuthMethod.MICROSOFT, AuthMethod.GOOGLE, AuthMethod.OAUTH2]


def saved(server, provider, method=AuthMethod.MICROSOFT, **overrides) -> SmtpConfiguration:
    configuration = oauth_configuration(server, provider, method, **overrides)
    configuration.full_clean()
    configuration.save()
    return configuration


def send_one(configuration: SmtpConfiguration) -> None:
    session = open_session(configuration)
    try:
        session.send_raw(SENDER, [RECIPIENT], b"Subject: Kalibrierung\r\n\r\nHallo\r\n")
    finally:
        session.close()


def secrets_of(provider) -> list[str]:
    """Every secret a configuration of the fake holds, and parts of keys a leak would show."""
    google_key = provider._google_key_pem.splitlines()[5]
    return [provider.client_secret, google_key]


# Signing in ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("method", METHODS)
def test_each_method_sends_a_mail_with_a_token(method, smtp_server_oauth, identity_provider):
    configuration = saved(smtp_server_oauth, identity_provider, method)

    send_one(configuration)

    assert [m.recipients for m in smtp_server_oauth.messages] == [[RECIPIENT]]
    assert [(a.mechanism, a.username, a.success) for a in smtp_server_oauth.auth_attempts] == [
        ("XOAUTH2", SENDER, True)
    ]
    provider = {"microsoft": "microsoft", "google": "google", "oauth2": "generic"}[method]
    assert [(r.provider, r.success) for r in identity_provider.token_requests] == [(provider, True)]


@pytest.mark.django_db
def test_microsoft_certificate_instead_of_secret(smtp_server_oauth, identity_provider):
    configuration = saved(
        smtp_server_oauth,
        identity_provider,
        oauth_client_secret="",
        oauth_certificate=identity_provider.certificate_pem,
    )

    send_one(configuration)

    assert len(smtp_server_oauth.messages) == 1
    assert identity_provider.token_requests[0].success is True


@pytest.mark.django_db
def test_google_token_impersonates_the_mailbox(smtp_server_oauth, identity_provider):
    configuration = saved(smtp_server_oauth, identity_provider, AuthMethod.GOOGLE)

    token = get_access_token(configuration)

    assert token.endpoint_host == f"127.0.0.1:{identity_provider.port}"
    assert token.scopes == "https://mail.google.com/"
    assert identity_provider.accepts(token.token)


def test_sasl_string_is_the_xoauth2_format():
    assert sasl_xoauth2("a@example.com", "tok") == "user=a@example.com\x01auth=Bearer tok\x01\x01"


@pytest.mark.django_db
def test_test_server_refuses_foreign_and_expired_tokens(smtp_server_oauth, identity_provider):
    configuration = saved(smtp_server_oauth, identity_provider)
    token = get_access_token(configuration).token

    assert identity_provider.accepts(token) is True
    assert identity_provider.accepts(token + "x") is False
    with time_machine.travel(timezone.now() + timedelta(seconds=3601)):
        assert identity_provider.accepts(token) is False


# The cache ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_token_is_cached_and_reused_across_sessions(smtp_server_oauth, identity_provider):
    configuration = saved(smtp_server_oauth, identity_provider)

    for _ in range(3):
        send_one(SmtpConfiguration.objects.get(pk=configuration.pk))

    assert len(smtp_server_oauth.messages) == 3
    assert len(identity_provider.token_requests) == 1
    row = OAuthToken.objects.get(configuration=configuration)
    # Encrypted at rest like the password.
    raw = (
        OAuthToken.objects.filter(pk=row.pk)
        .extra(select={"raw": "access_token"})
        .values_list("raw", flat=True)[0]
    )
    assert row.access_token not in raw
    assert identity_provider.accepts(row.access_token)


@pytest.mark.django_db
def test_token_is_renewed_shortly_before_it_expires(smtp_server_oauth, identity_provider):
    configuration = saved(smtp_server_oauth, identity_provider)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        first = get_access_token(configuration)
    with time_machine.travel(start + timedelta(minutes=50), tick=False):
        assert get_access_token(configuration).token == first.token
        assert len(identity_provider.token_requests) == 1
    with time_machine.travel(start + timedelta(minutes=56), tick=False):
        renewed = get_access_token(configuration)
        send_one(configuration)

    assert renewed.token != first.token
    assert len(identity_provider.token_requests) == 2
    assert smtp_server_oauth.auth_attempts[-1].success is True


@pytest.mark.django_db
def test_changed_credentials_do_not_reuse_the_old_token(smtp_server_oauth, identity_provider):
    configuration = saved(smtp_server_oauth, identity_provider)
    get_access_token(configuration)

    configuration.oauth_client_secret = "wrong"
    configuration.save()

    with pytest.raises(TokenRefused):
        get_access_token(configuration)
    assert len(identity_provider.token_requests) == 2


@pytest.mark.django_db(transaction=True)
def test_ten_workers_needing_a_token_at_once_cause_one_request(
    smtp_server_oauth, identity_provider
):
    configuration = saved(smtp_server_oauth, identity_provider)
    # The provider takes its time, so every thread asks while the first request runs.
    identity_provider.delay = 0.5
    barrier = threading.Barrier(10)
    tokens: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            tokens.append(
                get_access_token(SmtpConfiguration.objects.get(pk=configuration.pk)).token
            )
        except BaseException as exc:  # pragma: no cover - shown in the assert
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(tokens) == 10
    assert len(set(tokens)) == 1
    assert len(identity_provider.token_requests) == 1
    assert identity_provider.accepts(tokens[0])


@pytest.mark.django_db
def test_token_refused_by_the_mail_server_is_forgotten(smtp_server_oauth, identity_provider):
    configuration = saved(smtp_server_oauth, identity_provider)
    stale = get_access_token(configuration).token
    # The tenant revoked it (the provider no longer knows it).
    identity_provider._tokens.clear()

    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)
    assert report.ok is True  # the test asks for a fresh token
    identity_provider._tokens.clear()
    with pytest.raises(Exception) as refused:
        send_one(configuration)

    assert "535" in str(refused.value)
    assert OAuthToken.objects.get(configuration=configuration).access_token == ""
    send_one(configuration)
    assert len(smtp_server_oauth.messages) == 1
    assert stale not in [t for t in identity_provider._tokens]


# Verdicts -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_wrong_client_secret_gives_a_plain_verdict_with_the_code(
    smtp_server_oauth, identity_provider
):
    configuration = saved(smtp_server_oauth, identity_provider, oauth_client_secret="not-it")

    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict.startswith(
        f"The identity provider 127.0.0.1:{identity_provider.port} refused to issue a token: "
        "AADSTS7000215 (invalid_client) Invalid client secret provided."
    )
    assert "The client secret is wrong" in report.verdict
    assert "not-it" not in report.verdict
    assert smtp_server_oauth.connections_made == 0
    assert report.transcript[-1].text.startswith(
        f"Token request to 127.0.0.1:{identity_provider.port} failed after"
    )


@pytest.mark.django_db
def test_unknown_tenant_and_missing_delegation_are_named(smtp_server_oauth, identity_provider):
    tenant = saved(smtp_server_oauth, identity_provider, oauth_tenant_id="no-such-tenant")
    identity_provider.delegation = False
    google = saved(smtp_server_oauth, identity_provider, AuthMethod.GOOGLE, name="Google")

    tenant_report = test_connection(tenant, sender=SENDER, recipient=RECIPIENT)
    google_report = test_connection(google, sender=SENDER, recipient=RECIPIENT)

    assert "invalid_tenant" in tenant_report.verdict
    assert "directory (tenant) ID is not known" in tenant_report.verdict
    assert "unauthorized_client" in google_report.verdict
    assert "Domain-wide delegation is missing" in google_report.verdict


@pytest.mark.django_db
def test_token_the_mail_server_refuses_gives_a_verdict_with_the_reply(
    smtp_server_oauth, identity_provider
):
    configuration = saved(smtp_server_oauth, identity_provider)
    # A token the fake issued, but the SMTP server trusts another provider.
    smtp_server_oauth.xoauth2 = type(identity_provider)(identity_provider.certificates)

    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert report.verdict.startswith(
        "The mail server refused the access token: 535 5.7.3 Authentication unsuccessful."
    )
    assert "SMTP.SendAsApp" in report.verdict
    assert report.reply_code == 535


@pytest.mark.django_db
def test_gmail_style_error_challenge_ends_in_a_verdict(smtp_server_oauth, identity_provider):
    configuration = saved(smtp_server_oauth, identity_provider, AuthMethod.GOOGLE)
    smtp_server_oauth.xoauth2 = type(identity_provider)(identity_provider.certificates)
    smtp_server_oauth.xoauth2_error_challenge = True

    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.verdict.startswith(
        "The mail server refused the access token: 535 5.7.8 Username and Password not accepted."
    )
    assert "domain-wide delegation" in report.verdict


@pytest.mark.django_db
@pytest.mark.parametrize("method", METHODS)
def test_provider_outage_is_unavailable_not_refused(method, smtp_server_oauth, identity_provider):
    configuration = saved(smtp_server_oauth, identity_provider, method)
    identity_provider.outage = 503

    with pytest.raises(TokenServiceUnavailable):
        get_access_token(configuration)
    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is False
    assert (
        f"The identity provider 127.0.0.1:{identity_provider.port} is unavailable" in report.verdict
    )
    assert "mails wait and are tried again" in report.verdict


@pytest.mark.django_db
def test_provider_that_hangs_times_out(smtp_server_oauth, identity_provider):
    configuration = saved(smtp_server_oauth, identity_provider, AuthMethod.OAUTH2, timeout=1)
    identity_provider.hang = True

    with pytest.raises(TokenServiceUnavailable, match="timeout"):
        get_access_token(configuration)


# Delivery -------------------------------------------------------------------------------


def due_mail(configuration) -> OutboxMessage:
    return OutboxMessageFactory(
        smtp_configuration=configuration,
        status=Status.QUEUED,
        next_attempt_at=timezone.now(),
        from_email=SENDER,
    )


@pytest.mark.django_db(transaction=True)
def test_delivery_sends_with_one_token_for_many_mails(smtp_server_oauth, identity_provider):
    from mailbox.delivery import deliver_due

    configuration = saved(smtp_server_oauth, identity_provider, max_messages_per_connection=2)
    mails = [due_mail(configuration) for _ in range(5)]

    stats = deliver_due(configuration_id=configuration.pk, worker_id="test:1")

    assert stats.sent == 5
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {Status.SENT}
    assert len(smtp_server_oauth.messages) == len(mails)
    # Three connections (two mails each), one token.
    assert stats.connections >= 3
    assert len(identity_provider.token_requests) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("outage", "is unavailable (HTTP 503)"),
        ("secret", "AADSTS7000215 (invalid_client)"),
    ],
)
def test_delivery_defers_when_no_token(fault, expected, smtp_server_oauth, identity_provider):
    from mailbox.delivery import deliver_due

    configuration = saved(smtp_server_oauth, identity_provider)
    if fault == "outage":
        identity_provider.outage = 503
    else:
        configuration.oauth_client_secret = "revoked"
        configuration.save()
    mail = due_mail(configuration)

    deliver_due(configuration_id=configuration.pk, worker_id="test:1")

    mail.refresh_from_db()
    # Like a refused password: deferred with the reason, failed only after the retries.
    assert mail.status == Status.DEFERRED
    assert expected in mail.error_message
    assert smtp_server_oauth.messages == []


# Secrets ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_connection_test_shows_each_step_and_no_secret(
    smtp_server_oauth, identity_provider, caplog
):
    caplog.set_level(logging.DEBUG)
    configuration = saved(smtp_server_oauth, identity_provider)

    report = test_connection(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is True
    assert report.verdict == (
        "Connection OK: the identity provider issued a token, the server accepted it and "
        "the test recipient."
    )
    lines = [line.text for line in report.transcript]
    host = f"127.0.0.1:{identity_provider.port}"
    assert lines[0].startswith(f"Access token from {host} in ")
    assert "s: SMTP.SendAsApp; valid until " in lines[0]
    assert any(line.startswith("ehlo") for line in lines)
    assert "STARTTLS" in lines
    assert f"AUTH XOAUTH2 {MASK}" in lines
    assert any(line.startswith("235") for line in lines)
    assert f"mail FROM:<{SENDER}>" in lines
    assert f"rcpt TO:<{RECIPIENT}>" in lines
    token = OAuthToken.objects.get(configuration=configuration).access_token
    shown = " ".join([report.verdict, *lines, caplog.text])
    for secret in [token, base64.b64encode(sasl_xoauth2(SENDER, token).encode()).decode()]:
        assert secret not in shown
    for secret in secrets_of(identity_provider):
        assert secret not in shown


@pytest.mark.django_db
@pytest.mark.parametrize("method", METHODS)
def test_send_test_mail_works_with_every_method(method, smtp_server_oauth, identity_provider):
    configuration = saved(smtp_server_oauth, identity_provider, method)

    report = send_test_mail(configuration, sender=SENDER, recipient=RECIPIENT)

    assert report.ok is True
    assert report.verdict.startswith("Test mail accepted by the server: 250")
    assert smtp_server_oauth.messages[0].subject == "calmail test mail"
    assert any(line.text == f"AUTH XOAUTH2 {MASK}" for line in report.transcript)


@pytest.mark.django_db
def test_rotation_reencrypts_oauth_secrets_and_token(
    settings, smtp_server_oauth, identity_provider
):
    configuration = saved(
        smtp_server_oauth, identity_provider, oauth_certificate=identity_provider.certificate_pem
    )
    google = saved(smtp_server_oauth, identity_provider, AuthMethod.GOOGLE, name="Google")
    token = get_access_token(configuration).token
    old_key = settings.FERNET_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new_key, old_key]

    call_command("rotate_fernet_keys", stdout=io.StringIO())
    settings.FERNET_KEYS = [new_key]

    def raw(model, pk, column):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {column} FROM {model._meta.db_table} WHERE id = %s", [pk])  # noqa: S608
            return cursor.fetchone()[0]

    fernet = Fernet(new_key)
    table = SmtpConfiguration
    assert fernet.decrypt(
        raw(table, configuration.pk, "oauth_client_secret").encode()
    ).decode() == (identity_provider.client_secret)
    assert fernet.decrypt(raw(table, configuration.pk, "oauth_certificate").encode()).decode() == (
        identity_provider.certificate_pem
    )
    assert fernet.decrypt(raw(table, google.pk, "oauth_service_account").encode()).decode() == (
        identity_provider.service_account_json()
    )
    row = OAuthToken.objects.get(configuration=configuration)
    assert fernet.decrypt(raw(OAuthToken, row.pk, "access_token").encode()).decode() == token
    # And it still signs in with the new key alone, from the cache.
    send_one(SmtpConfiguration.objects.get(pk=configuration.pk))
    assert len(identity_provider.token_requests) == 1
