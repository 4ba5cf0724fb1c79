"""Fixtures for the outbox and its delivery engine: a configuration pointing at the
in-process SMTP server, due outbox rows, and a run of the engine."""

import pytest
from django.utils import timezone

from mailbox.delivery import DeliveryStats, deliver_due
from mailbox.models import OutboxMessage, Status
from smtpconfig.models import SmtpConfiguration
from tests.factories import OutboxMessageFactory
from tests.section_fixtures import english, media_root, other_team, team  # noqa: F401 (fixtures)
from tests.smtp_server import smtp_configuration

WORKER = "test-host:4242"


def configuration_for(server, **overrides) -> SmtpConfiguration:
    """A saved configuration that delivers to a test server (plain SMTP unless the server
    speaks TLS)."""
    values = {
        "name": f"Test server {server.port}",
        "from_email": "calmail@example.com",
        "max_connections": 2,
        "max_messages_per_connection": 100,
    }
    values.update(overrides)
    configuration = smtp_configuration(server, **values)
    configuration.save()
    return configuration


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelining"])
def smtp_server(smtp_server_factory, request):
    """Plain SMTP. Every engine test runs twice: against a server that answers command by
    command and one that offers PIPELINING (as Postfix does), the engine's other path."""
    return smtp_server_factory(pipelining=request.param)


@pytest.fixture
def configuration(db, smtp_server) -> SmtpConfiguration:
    return configuration_for(smtp_server)


def due_mail(configuration: SmtpConfiguration, **overrides) -> OutboxMessage:
    """A queued mail that is due now, stored without enqueue() (no dispatch)."""
    values = {
        "smtp_configuration": configuration,
        "status": Status.QUEUED,
        "next_attempt_at": timezone.now(),
    }
    values.update(overrides)
    return OutboxMessageFactory(**values)


def deliver(configuration: SmtpConfiguration, **options) -> DeliveryStats:
    options.setdefault("worker_id", WORKER)
    return deliver_due(configuration_id=configuration.pk, **options)
