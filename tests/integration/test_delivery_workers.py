"""The delivery engine with real Celery workers, Redis and PostgreSQL (see conftest.py).

What the SMTP server received is counted by Message-ID and compared with the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from mailbox.delivery import sweep
from mailbox.models import AttemptOutcome, DeliveryAttempt, DeliverySlot, OutboxMessage, Status
from mailbox.services import enqueue
from smtpconfig.models import SmtpConfiguration
from tests.factories import SmtpConfigurationFactory
from tests.integration.conftest import pids_with_local_port, wait_for
from tests.smtp_server import unused_port

pytestmark = pytest.mark.django_db(transaction=True)

SENDER = "calmail@example.com"


def smtp_configuration(port: int, **fields) -> SmtpConfiguration:
    values = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "smtp_auth": False,
        "timeout": 10,
        "from_email": SENDER,
        "max_connections": 4,
        "max_messages_per_connection": 500,
    }
    return SmtpConfigurationFactory(**{**values, **fields})


def enqueue_mails(configuration: SmtpConfiguration, count: int, *, chunk: int = 200) -> list[str]:
    """Enqueue count mails, chunk per transaction (each dispatches on commit); Message-IDs."""
    message_ids = []
    for first in range(0, count, chunk):
        with transaction.atomic():
            for number in range(first, min(count, first + chunk)):
                message = enqueue(
                    to=[f"recipient{number}@example.com"],
                    subject=f"Integration mail {number}",
                    body_text=f"Mail number {number}.",
                    from_email=SENDER,
                    smtp_configuration=configuration,
                )
                message_ids.append(message.message_id)
    return message_ids


def status_counts() -> dict[str, int]:
    return dict(OutboxMessage.objects.values_list("status").annotate(n=Count("id")).order_by())


def all_sent(count: int) -> bool:
    return OutboxMessage.objects.filter(status=Status.SENT).count() == count


def no_delivery_running() -> bool:
    """No worker holds a connection slot: no mail is in flight, so none can still arrive
    twice. (Quicker than waiting until every queued nudge has been consumed.)"""
    return not (
        DeliverySlot.objects.exclude(holder="").filter(lease_expires_at__gt=timezone.now()).exists()
    )


def sweeping(condition: Callable[[], bool], *, every: float = 0.5) -> Callable[[], bool]:
    """condition, with a sweep() (what Celery beat does every minute) at most every `every` s."""
    last = [0.0]

    def check() -> bool:
        if condition():
            return True
        if time.monotonic() - last[0] >= every:
            last[0] = time.monotonic()
            sweep()
        return False

    return check


def test_two_workers_send_each_of_2000_mails_exactly_once(
    celery_workers, redis_server, integration_smtp_server
):
    server = integration_smtp_server()
    configuration = smtp_configuration(server.port)
    celery_workers.start("w1")
    celery_workers.start("w2")

    message_ids = enqueue_mails(configuration, 2000)

    def details() -> str:
        return (
            f"statuses {status_counts()}, received {len(server.messages)}\n{celery_workers.logs()}"
        )

    wait_for(lambda: all_sent(2000), timeout=90, what="2000 mails sent", details=details)
    wait_for(no_delivery_running, timeout=30, what="every delivery run to end", details=details)
    received = server.message_ids()
    duplicates = {message_id: n for message_id, n in received.items() if n > 1}
    assert duplicates == {}
    assert sorted(received) == sorted(message_ids)
    assert status_counts() == {Status.SENT: 2000}
    attempts = DeliveryAttempt.objects.all()
    assert attempts.count() == 2000
    assert set(attempts.values_list("outcome", flat=True)) == {AttemptOutcome.SENT}
    # Both workers really took part (else this would prove nothing about claiming).
    worker_names = {worker.split("@")[0] for worker in attempts.values_list("worker", flat=True)}
    assert worker_names == {"w1", "w2"}


def test_killed_worker_duplicates_only_mails_its_sessions_had_in_flight(
    celery_workers, redis_server, integration_smtp_server, settings
):
    lease = 5
    settings.CALMAIL_SENDING_LEASE_SECONDS = lease
    total = 600
    server = integration_smtp_server()
    # The 180th mail (30 %) reaches the server, but its 250 is held back: the kill lands
    # between the server taking the mail and the worker recording it.
    server.hold_after = total * 30 // 100
    configuration = smtp_configuration(server.port)
    environment = {"CALMAIL_SENDING_LEASE_SECONDS": str(lease)}
    workers = [celery_workers.start(name, **environment) for name in ("w1", "w2")]

    message_ids = enqueue_mails(configuration, total)

    def details() -> str:
        return (
            f"statuses {status_counts()}, received {len(server.messages)}\n{celery_workers.logs()}"
        )

    wait_for(
        server.holding.is_set, timeout=60, what="the held mail to reach the server", details=details
    )
    owners = pids_with_local_port(
        server.held_peer[1], [pid for worker in workers for pid in worker.pids()]
    )
    victims = [worker for worker in workers if set(worker.pids()) & set(owners)]
    assert len(victims) == 1, f"connection {server.held_peer} belongs to {owners}"
    [victim] = victims
    victim.kill()
    server.release()
    [survivor] = [worker for worker in workers if worker is not victim]

    held = OutboxMessage.objects.get(message_id=server.held_message_id)
    assert held.status == Status.SENDING
    dead_worker = held.claimed_by
    dead_rows = OutboxMessage.objects.filter(status=Status.SENDING, claimed_by=dead_worker)

    # The survivor sends everything but the dead worker's claimed batch.
    wait_for(
        lambda: OutboxMessage.objects.exclude(status=Status.SENT).count() == dead_rows.count(),
        timeout=60,
        what="the surviving worker to send all mail not claimed by the killed one",
        details=details,
    )
    assert survivor.is_running()
    stranded = dead_rows.count()
    assert stranded >= 1
    claimed_by_the_dead = set(dead_rows.values_list("message_id", flat=True))
    lease_end = dead_rows.aggregate(end=Max("lease_expires_at"))["end"]
    celery_workers.start("w3", **environment)
    wait_for(
        lambda: timezone.now() > lease_end,
        timeout=lease + 5,
        what="the killed worker's lease to expire",
    )

    assert sweep().recovered == stranded
    wait_for(lambda: all_sent(total), timeout=60, what=f"{total} mails sent", details=details)
    wait_for(no_delivery_running, timeout=30, what="every delivery run to end", details=details)
    received = server.message_ids()
    duplicates = {message_id: n for message_id, n in received.items() if n > 1}
    # The mail in flight when the worker died carries its Message-ID twice; another of its
    # sessions may have had one in flight too (tests/integration/test_delivery_sessions.py
    # counts them exactly), never a mail the killed worker had not claimed.
    assert duplicates[server.held_message_id] == 2
    assert set(duplicates) <= claimed_by_the_dead
    assert set(duplicates.values()) == {2}
    assert len(duplicates) <= configuration.max_connections
    assert sorted(received) == sorted(message_ids)
    assert status_counts() == {Status.SENT: total}


def test_mail_is_deferred_while_the_smtp_server_is_down_then_delivered(
    celery_workers, redis_server, integration_smtp_server
):
    port = unused_port()
    configuration = smtp_configuration(port, timeout=5)
    # Retries a second apart, more of them than the outage lasts.
    celery_workers.start("w1", CALMAIL_RETRY_BACKOFF=",".join(["1"] * 20))

    message_ids = enqueue_mails(configuration, 30)
    messages = OutboxMessage.objects.filter(message_id__in=message_ids)

    def details() -> str:
        return f"statuses {status_counts()}\n{celery_workers.logs()}"

    # Nothing listens on the port: every mail is deferred, and retried while it stays down.
    wait_for(
        sweeping(
            lambda: (
                not messages.filter(attempt_count__lt=2).exists()
                and status_counts() == {Status.DEFERRED: 30}
            )
        ),
        timeout=30,
        what="every mail to be tried twice, and deferred, while the server is down",
        details=details,
    )
    assert not messages.filter(error_message="").exists()
    deferred_attempts = DeliveryAttempt.objects.filter(outcome=AttemptOutcome.DEFERRED)
    assert set(deferred_attempts.values_list("message__message_id", flat=True)) == set(message_ids)

    server = integration_smtp_server(port=port)
    wait_for(
        sweeping(lambda: all_sent(30)),
        timeout=30,
        what="every mail to be sent after the server came back",
        details=details,
    )
    received = server.message_ids()
    assert sorted(received) == sorted(message_ids)
    assert set(received.values()) == {1}
    assert set(messages.values_list("error_message", flat=True)) == {""}
    sent_attempts = DeliveryAttempt.objects.filter(outcome=AttemptOutcome.SENT)
    assert sorted(sent_attempts.values_list("message__message_id", flat=True)) == sorted(
        message_ids
    )


def test_enqueue_succeeds_while_redis_is_down_and_the_mail_goes_out_after(
    celery_workers, redis_server, integration_smtp_server
):
    server = integration_smtp_server()
    configuration = smtp_configuration(server.port)
    celery_workers.start("w1")
    redis_server.stop()

    started = time.monotonic()
    [message_id] = enqueue_mails(configuration, 1)
    elapsed = time.monotonic() - started

    # A sanity bound, not a benchmark: the publish retries are bounded, nothing waits long.
    assert elapsed < 5
    assert OutboxMessage.objects.get(message_id=message_id).status == Status.QUEUED

    redis_server.start()
    wait_for(
        sweeping(lambda: all_sent(1), every=1),
        timeout=60,
        what="the mail to be sent after Redis came back",
        details=lambda: f"statuses {status_counts()}\n{celery_workers.logs()}",
    )
    assert server.message_ids() == {message_id: 1}
