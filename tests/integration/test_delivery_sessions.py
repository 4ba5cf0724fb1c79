"""Several SMTP sessions per worker process (mailbox.delivery._Crew, issue 14), with real
Celery workers, Redis and PostgreSQL (see conftest.py).

The SMTP server answers DATA only after a delay, so sessions overlap, and counts the
sessions open at once: the configuration's limit holds across processes, one process
holds several sessions, and a killed process duplicates at most the mails its sessions
had in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from mailbox.delivery import sweep
from mailbox.models import AttemptOutcome, DeliveryAttempt, OutboxMessage, Status
from mailbox.services import OutgoingMail, enqueue_many
from smtpconfig.models import SmtpConfiguration
from tests.integration.conftest import IntegrationSmtpServer, wait_for
from tests.integration.test_delivery_workers import (
    SENDER,
    all_sent,
    no_delivery_running,
    smtp_configuration,
    status_counts,
    sweeping,
)
from tests.smtp_server import _Handler

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the workers share the test database: PostgreSQL"
    ),
]

LEASE = 5
_headers = email.parser.BytesHeaderParser(policy=email.policy.default)


def enqueue_mails(configuration: SmtpConfiguration, count: int) -> list[str]:
    """count mails through enqueue_many() (a commit and a nudge per chunk); Message-IDs."""
    result = enqueue_many(
        OutgoingMail(
            to=[f"recipient{number}@example.com"],
            subject=f"Session mail {number}",
            body_text=f"Mail number {number}.",
            from_email=SENDER,
            smtp_configuration=configuration,
        )
        for number in range(count)
    )
    assert result.errors == {}
    assert result.created == count
    return [message.message_id for message in result.stored]


def duplicates_of(received: Counter) -> dict[str, int]:
    return {message_id: n for message_id, n in received.items() if n > 1}


# A server that can hold every reply back ----------------------------------------------------


class _GateHandler(_Handler):
    """Like the usual handler; while the gate is closed, the 250s wait behind it."""

    async def _answer_data(self, smtp, envelope) -> str:
        reply = await super()._answer_data(smtp, envelope)
        server: GatedSmtpServer = self.server
        if reply.startswith("250") and server.gate_closed.is_set():
            # Stored (received) and counted in flight by the server, but unanswered.
            headers = _headers.parsebytes(envelope.original_content or b"")
            server.held.add(str(headers["Message-ID"]))
            while server.gate_closed.is_set():
                await asyncio.sleep(0.01)
        return reply


class GatedSmtpServer(IntegrationSmtpServer):
    """close_gate(): from then on every accepted mail is stored and its 250 held back
    (its Message-ID in ``held``) until open_gate(); the mails held are in flight: the
    client sent them, the server has them, and the client has not heard so."""

    def __init__(self, **options):
        super().__init__(**options)
        self._controller.handler = _GateHandler(self)
        self.gate_closed = threading.Event()
        self.held: set[str] = set()

    def close_gate(self) -> None:
        self.gate_closed.set()

    def open_gate(self) -> None:
        self.gate_closed.clear()

    def stop(self) -> None:
        self.open_gate()
        super().stop()


@pytest.fixture
def gated_smtp_server(smtp_certificates) -> Iterator[Callable[..., GatedSmtpServer]]:
    servers: list[GatedSmtpServer] = []

    def start(**options) -> GatedSmtpServer:
        options.setdefault("certificates", smtp_certificates)
        options.setdefault("pipelining", True)
        server = GatedSmtpServer(**options)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        with contextlib.suppress(Exception):
            server.stop()


# Tests -------------------------------------------------------------------------------------


def test_two_workers_stay_within_max_connections_and_each_holds_several_sessions(
    celery_workers, redis_server, integration_smtp_server
):
    total = 600
    server = integration_smtp_server(data_delay=0.1)
    configuration = smtp_configuration(
        server.port, max_connections=10, max_messages_per_connection=1000
    )
    environment = {"CALMAIL_DELIVERY_BATCH_SIZE": "20"}
    celery_workers.start("w1", **environment)
    celery_workers.start("w2", **environment)

    message_ids = enqueue_mails(configuration, total)

    def details() -> str:
        return (
            f"statuses {status_counts()}, received {len(server.messages)}, sessions now "
            f"{server.open_sessions}, at most {server.most_sessions_at_once}\n"
            f"{celery_workers.logs()}"
        )

    wait_for(lambda: all_sent(total), timeout=45, what=f"{total} mails sent", details=details)
    wait_for(no_delivery_running, timeout=30, what="every delivery run to end", details=details)
    received = server.message_ids()
    assert duplicates_of(received) == {}
    assert sorted(received) == sorted(message_ids)
    assert status_counts() == {Status.SENT: total}
    attempts = DeliveryAttempt.objects.all()
    assert attempts.count() == total
    assert set(attempts.values_list("outcome", flat=True)) == {AttemptOutcome.SENT}
    # Never more sessions than the configuration allows, across both processes; and more
    # than two processes could hold with one session each.
    assert server.most_sessions_at_once <= 10, details()
    assert server.most_sessions_at_once > 2, details()
    assert server.most_data_in_flight <= 10


def test_killed_worker_duplicates_at_most_the_mails_its_sessions_had_in_flight(
    celery_workers, redis_server, gated_smtp_server, settings
):
    settings.CALMAIL_SENDING_LEASE_SECONDS = LEASE
    total = 400
    server = gated_smtp_server(data_delay=0.3)
    configuration = smtp_configuration(
        server.port, max_connections=10, max_messages_per_connection=1000
    )
    # Batches of ten: 400 mails leave every one of the ten sessions a backlog to claim.
    environment = {
        "CALMAIL_SENDING_LEASE_SECONDS": str(LEASE),
        "CALMAIL_DELIVERY_BATCH_SIZE": "10",
    }
    victim = celery_workers.start("w1", **environment)

    message_ids = enqueue_mails(configuration, total)

    def details() -> str:
        return (
            f"statuses {status_counts()}, received {len(server.messages)}, sessions now "
            f"{server.open_sessions}, at most {server.most_sessions_at_once}, in flight "
            f"{server.data_in_flight}, held {len(server.held)}\n{celery_workers.logs()}"
        )

    wait_for(
        lambda: server.open_sessions == 10 and len(server.messages) >= 30,
        timeout=30,
        what="ten sessions of the one worker sending, and some mail delivered",
        details=details,
    )
    # Hold every reply from now on, until each open session waits for one: then every
    # mail answered before is committed (a session writes its outcome before it sends the
    # next), and the mails in flight are exactly the ones held.
    server.close_gate()
    wait_for(
        lambda: len(server.held) == server.open_sessions == server.data_in_flight,
        timeout=10,
        what="every open session to wait for the reply to a mail",
        details=details,
    )
    in_flight = set(server.held)
    in_flight_counted = server.data_in_flight
    sessions_at_kill = server.open_sessions
    victim.kill()
    server.open_gate()
    assert victim.pids() == []

    assert 1 <= len(in_flight) == in_flight_counted <= 10
    sending = OutboxMessage.objects.filter(status=Status.SENDING)
    dead_workers = set(sending.values_list("claimed_by", flat=True))
    assert len(dead_workers) == 1
    [dead_worker] = dead_workers
    assert dead_worker.startswith("w1@")
    # The mails in flight are rows the dead worker had claimed and never answered.
    assert in_flight <= set(sending.values_list("message_id", flat=True))
    stranded = sending.count()
    lease_end = sending.aggregate(end=Max("lease_expires_at"))["end"]

    celery_workers.start("w2", **environment)
    wait_for(
        lambda: timezone.now() > lease_end,
        timeout=LEASE + 5,
        what="the killed worker's leases to expire",
    )
    assert sweep().recovered == stranded
    wait_for(
        sweeping(lambda: all_sent(total)), timeout=60, what=f"{total} mails sent", details=details
    )
    wait_for(no_delivery_running, timeout=30, what="every delivery run to end", details=details)

    received = server.message_ids()
    # Every mail arrived; the ones received twice are the ones in flight when the worker
    # died (each sent again, with its Message-ID, after its lease ran out), no others.
    assert sorted(set(received)) == sorted(message_ids)
    duplicates = duplicates_of(received)
    assert set(duplicates.values()) <= {2}
    assert set(duplicates) <= in_flight
    assert len(duplicates) <= in_flight_counted <= sessions_at_kill <= 10
    assert set(duplicates) == in_flight
    assert status_counts() == {Status.SENT: total}
    # One attempt per mail: the dead worker wrote none for the mails it had in flight.
    assert set(OutboxMessage.objects.values_list("attempt_count", flat=True)) == {1}
    assert DeliveryAttempt.objects.filter(outcome=AttemptOutcome.SENT).count() == total
    assert DeliveryAttempt.objects.count() == total
