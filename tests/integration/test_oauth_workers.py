"""Delivery with OAuth 2.0 sign-in (AUTH XOAUTH2) through real Celery workers: Microsoft
365 against the fake identity provider (tests/smtp_server.py), end to end."""

from __future__ import annotations

import pytest

from mailbox.models import DeliveryAttempt, OutboxMessage, Status
from smtpconfig.models import OAuthToken
from tests.integration.conftest import wait_for
from tests.integration.test_delivery_workers import (
    enqueue_mails,
    no_delivery_running,
    smtp_configuration,
    status_counts,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_workers_send_with_one_microsoft_token(
    celery_workers, redis_server, integration_smtp_server, identity_provider, smtp_certificates
):
    server = integration_smtp_server(
        tls="starttls", xoauth2=identity_provider, require_starttls=True, auth_required=True
    )
    configuration = smtp_configuration(
        server.port,
        security="starttls",
        smtp_auth=True,
        auth_method="microsoft",
        username="labor@example.com",
        oauth_tenant_id=identity_provider.tenant,
        oauth_client_id=identity_provider.client_id,
        oauth_client_secret=identity_provider.client_secret,
        max_messages_per_connection=50,
    )
    # The provider is slow, so sessions of both workers ask for a token at the same time.
    identity_provider.delay = 0.3
    environment = {
        "CALMAIL_OAUTH_MICROSOFT_AUTHORITY": identity_provider.url,
        "CALMAIL_OAUTH_CA_FILE": str(smtp_certificates.ca_file),
        "CALMAIL_SMTP_CA_FILE": str(smtp_certificates.ca_file),
    }
    celery_workers.start("w1", **environment)
    celery_workers.start("w2", **environment)

    message_ids = enqueue_mails(configuration, 400)

    def details() -> str:
        return (
            f"statuses {status_counts()}, received {len(server.messages)}, token requests "
            f"{identity_provider.token_requests}\n{celery_workers.logs()}"
        )

    wait_for(
        lambda: OutboxMessage.objects.filter(status=Status.SENT).count() == 400,
        timeout=90,
        what="400 mails sent with OAuth",
        details=details,
    )
    wait_for(no_delivery_running, timeout=30, what="every delivery run to end", details=details)
    assert sorted(server.message_ids()) == sorted(message_ids)
    assert status_counts() == {Status.SENT: 400}
    # Every session signed in with XOAUTH2, all with the one token both workers shared.
    attempts = server.auth_attempts
    assert {(a.mechanism, a.username, a.success) for a in attempts} == {
        ("XOAUTH2", "labor@example.com", True)
    }
    assert len(attempts) >= 8
    assert [(r.provider, r.success) for r in identity_provider.token_requests] == [
        ("microsoft", True)
    ]
    token = OAuthToken.objects.get(configuration=configuration)
    assert identity_provider.accepts(token.access_token)

    # One worker process may well have served every session of the first batch (it holds
    # up to max_connections of them). So both stop, and a fresh worker process sends a
    # second batch: it must sign in with the token the others stored, not ask for one.
    celery_workers.stop_all()
    celery_workers.start("w3", **environment)
    second_ids = enqueue_mails(configuration, 50)
    wait_for(
        lambda: OutboxMessage.objects.filter(status=Status.SENT).count() == 450,
        timeout=60,
        what="the second batch sent by a fresh worker",
        details=details,
    )
    assert sorted(server.message_ids()) == sorted(message_ids + second_ids)
    later = DeliveryAttempt.objects.filter(message__message_id__in=second_ids)
    assert {worker.split("@")[0] for worker in later.values_list("worker", flat=True)} == {"w3"}
    assert len(identity_provider.token_requests) == 1
