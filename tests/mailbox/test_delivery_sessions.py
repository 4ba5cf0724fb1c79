"""One delivery run holds several SMTP sessions at once (mailbox.delivery._Crew, issue 14).

deliver_due() is called directly, in this process, against the in-process SMTP server
answering DATA after a short delay and counting the sessions open at once. The sessions
run in threads with database connections of their own, so the mails must be committed
rows: these tests use transactional database access (the one that runs inside a
transaction proves the run then keeps to one session).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from mailbox.delivery import DeliveryStats, StopReason, deliver_due
from mailbox.models import AttemptOutcome, DeliveryAttempt, DeliverySlot, OutboxMessage, Status
from mailbox.services import OutgoingMail, enqueue_many
from smtpconfig.models import SmtpConfiguration
from tests.integration.conftest import celery_publishing_to
from tests.mailbox.conftest import WORKER, configuration_for
from tests.smtp_server import SmtpTestServer, _Handler

# Each session commits on its own database connection: the rows must be committed.
committed = pytest.mark.django_db(transaction=True)

SENDER = "calmail@example.com"
# The server's pause between storing a mail and its 250: long against the engine's own
# work per mail, so sessions overlap for sure, short enough for hundreds of mails.
DATA_DELAY = 0.05
SESSION_THREAD = "calmail-session-"
# Another worker process, on another host: its slots count as held until their lease ends.
OTHER_WORKER = "w9@elsewhere.example:999"


@pytest.fixture
def slow_server(smtp_server_factory) -> SmtpTestServer:
    """Offers PIPELINING (like Postfix) and answers each DATA after DATA_DELAY."""
    return smtp_server_factory(pipelining=True, data_delay=DATA_DELAY)


def enqueue_mails(configuration: SmtpConfiguration, count: int) -> list[str]:
    """count mails through enqueue_many(); their Message-IDs. The delivery nudges go to an
    in-memory broker (no worker of a shared Redis may pick them up)."""
    mails = [
        OutgoingMail(
            to=[f"recipient{number}@example.org"],
            subject=f"Session mail {number}",
            body_text=f"Mail number {number}.",
            from_email=SENDER,
            smtp_configuration=configuration,
        )
        for number in range(count)
    ]
    with celery_publishing_to("memory://localhost//"):
        result = enqueue_many(mails)
    assert result.errors == {}
    assert result.created == count
    return [message.message_id for message in result.stored]


def deliver(configuration: SmtpConfiguration, **options) -> DeliveryStats:
    options.setdefault("worker_id", WORKER)
    return deliver_due(configuration_id=configuration.pk, **options)


def session_threads() -> list[str]:
    return sorted(
        thread.name
        for thread in threading.enumerate()
        if thread.name.startswith(SESSION_THREAD) and thread.is_alive()
    )


def watch_session_threads(server: SmtpTestServer) -> set[str]:
    """The names of the session threads alive whenever a mail reached the server."""
    seen: set[str] = set()

    def look() -> None:
        seen.update(session_threads())

    server.before_data_reply = look
    return seen


def received(server: SmtpTestServer) -> Counter:
    return Counter(str(message.message["Message-ID"]) for message in list(server.messages))


def statuses(configuration: SmtpConfiguration) -> dict[str, int]:
    return dict(
        OutboxMessage.objects.filter(smtp_configuration=configuration)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )


def assert_each_sent_once(server: SmtpTestServer, message_ids: list[str]) -> None:
    """The server took every mail once; every row is sent after one attempt."""
    assert received(server) == Counter(message_ids)
    rows = OutboxMessage.objects.filter(message_id__in=message_ids)
    assert set(rows.values_list("status", "attempt_count")) == {(Status.SENT, 1)}
    attempts = DeliveryAttempt.objects.filter(message__message_id__in=message_ids)
    assert Counter(attempts.values_list("message_id", flat=True)) == Counter(
        {pk: 1 for pk in rows.values_list("pk", flat=True)}
    )
    assert set(attempts.values_list("outcome", flat=True)) == {AttemptOutcome.SENT}


def assert_run_cleaned_up(configuration: SmtpConfiguration) -> None:
    """Every slot the run took is free again and no session thread is left."""
    assert session_threads() == []
    assert not DeliverySlot.objects.filter(smtp_configuration=configuration, holder=WORKER).exists()
    assert not OutboxMessage.objects.filter(status=Status.SENDING).exists()


# Several sessions --------------------------------------------------------------------------


@committed
def test_one_run_holds_up_to_max_connections_sessions_and_sends_each_mail_once(
    slow_server, settings
):
    settings.CALMAIL_DELIVERY_BATCH_SIZE = 20
    configuration = configuration_for(
        slow_server, max_connections=4, max_messages_per_connection=1000
    )
    message_ids = enqueue_mails(configuration, 300)
    seen_threads = watch_session_threads(slow_server)

    stats = deliver(configuration)

    assert_each_sent_once(slow_server, message_ids)
    assert (stats.claimed, stats.sent, stats.deferred, stats.failed) == (300, 300, 0, 0)
    assert stats.stop_reason == StopReason.DRAINED
    assert not stats.more_due
    # Several sessions at once, never more than the configuration allows.
    assert 2 <= stats.sessions <= 4
    assert 1 < slow_server.most_sessions_at_once <= 4
    assert slow_server.most_sessions_at_once <= stats.sessions
    assert slow_server.most_data_in_flight <= 4
    # Each session opens a connection of its own (when it has mail), none shared.
    assert stats.connections == slow_server.connections_made
    assert seen_threads, "no session ran in a thread of its own"
    assert all(name.startswith(f"{SESSION_THREAD}{configuration.pk}-") for name in seen_threads)
    # Every slot is free again (the run created the configuration's four).
    assert DeliverySlot.objects.filter(smtp_configuration=configuration).count() == 4
    assert set(
        DeliverySlot.objects.filter(smtp_configuration=configuration).values_list(
            "holder", "lease_expires_at"
        )
    ) == {("", None)}
    assert_run_cleaned_up(configuration)


@committed
def test_max_connections_1_keeps_one_session(slow_server, settings):
    settings.CALMAIL_DELIVERY_BATCH_SIZE = 10
    configuration = configuration_for(slow_server, max_connections=1)
    message_ids = enqueue_mails(configuration, 60)
    seen_threads = watch_session_threads(slow_server)

    stats = deliver(configuration)

    assert_each_sent_once(slow_server, message_ids)
    # Six full batches, and still no second session.
    assert stats.batches >= 6
    assert stats.sessions == 1
    assert slow_server.most_sessions_at_once == 1
    assert seen_threads == set()
    assert_run_cleaned_up(configuration)


@committed
def test_sessions_per_worker_caps_the_sessions_of_a_process(slow_server, settings):
    settings.CALMAIL_DELIVERY_BATCH_SIZE = 10
    settings.CALMAIL_DELIVERY_SESSIONS_PER_WORKER = 2
    configuration = configuration_for(slow_server, max_connections=4)
    message_ids = enqueue_mails(configuration, 120)

    stats = deliver(configuration)

    assert_each_sent_once(slow_server, message_ids)
    assert stats.sessions == 2
    assert slow_server.most_sessions_at_once == 2
    # At most two slots were ever taken by this run: the other two were never used.
    assert_run_cleaned_up(configuration)


@committed
def test_slots_held_by_another_worker_leave_this_run_the_rest(slow_server, settings):
    settings.CALMAIL_DELIVERY_BATCH_SIZE = 10
    configuration = configuration_for(slow_server, max_connections=4)
    lease = timezone.now() + timedelta(minutes=5)
    for number in (0, 1):
        DeliverySlot.objects.create(
            smtp_configuration=configuration,
            number=number,
            holder=OTHER_WORKER,
            lease_expires_at=lease,
        )
    message_ids = enqueue_mails(configuration, 120)

    stats = deliver(configuration)

    assert_each_sent_once(slow_server, message_ids)
    assert stats.sessions == 2
    assert slow_server.most_sessions_at_once == 2
    # The other worker's slots are still its own; the two this run took are free.
    slots = DeliverySlot.objects.filter(smtp_configuration=configuration).order_by("number")
    assert list(slots.values_list("number", "holder", "lease_expires_at")) == [
        (0, OTHER_WORKER, lease),
        (1, OTHER_WORKER, lease),
        (2, "", None),
        (3, "", None),
    ]
    assert_run_cleaned_up(configuration)


# One session -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_inside_a_transaction_the_run_keeps_one_session(slow_server, settings):
    """Threads have database connections of their own, which cannot see rows of a
    transaction the caller holds open: the run stays in the caller's thread."""
    settings.CALMAIL_DELIVERY_BATCH_SIZE = 10
    configuration = configuration_for(slow_server, max_connections=4)
    message_ids = enqueue_mails(configuration, 40)
    seen_threads = watch_session_threads(slow_server)

    stats = deliver(configuration)

    assert_each_sent_once(slow_server, message_ids)
    assert stats.batches >= 4
    assert stats.sessions == 1
    assert slow_server.most_sessions_at_once == 1
    assert seen_threads == set()
    assert session_threads() == []


@committed
def test_a_run_limited_by_max_messages_keeps_one_session(slow_server, settings):
    settings.CALMAIL_DELIVERY_BATCH_SIZE = 10
    configuration = configuration_for(slow_server, max_connections=4)
    message_ids = enqueue_mails(configuration, 80)
    seen_threads = watch_session_threads(slow_server)

    stats = deliver(configuration, max_messages=30)

    assert (stats.sent, stats.stop_reason, stats.sessions) == (30, StopReason.MAX_MESSAGES, 1)
    assert stats.more_due
    assert slow_server.most_sessions_at_once == 1
    assert seen_threads == set()
    assert len(received(slow_server)) == 30
    assert set(received(slow_server).values()) == {1}
    assert statuses(configuration) == {Status.SENT: 30, Status.QUEUED: 50}
    assert set(received(slow_server)) < set(message_ids)
    assert_run_cleaned_up(configuration)


# A session that fails ----------------------------------------------------------------------


class _OneSessionFailsHandler(_Handler):
    """After ``refuse_after`` mails, the next DATA gets a 421 (the server hangs up), and the
    next connection to come (that session reconnecting) is dropped at EHLO."""

    async def handle_DATA(self, smtp, session, envelope) -> str:
        server: OneSessionFailsServer = self.server
        if server.refused_peer is None and len(server.messages) >= server.refuse_after:
            server.refused_peer = smtp.transport.get_extra_info("peername")
            server.drop_next_connection = True
            return "421 4.3.2 Service shutting down"
        return await super().handle_DATA(smtp, session, envelope)

    async def handle_EHLO(self, smtp, session, envelope, hostname, responses) -> list[str]:
        server: OneSessionFailsServer = self.server
        if server.drop_next_connection:
            server.drop_next_connection = False
            server.dropped_connections += 1
            # Hang up without a reply; connection_lost() cancels this handler.
            smtp.transport.close()
            await asyncio.Event().wait()
        return await super().handle_EHLO(smtp, session, envelope, hostname, responses)


class OneSessionFailsServer(SmtpTestServer):
    def __init__(self, *, refuse_after: int, **options):
        super().__init__(**options)
        self._controller.handler = _OneSessionFailsHandler(self)
        self.refuse_after = refuse_after
        self.refused_peer: tuple[str, int] | None = None
        self.drop_next_connection = False
        self.dropped_connections = 0


@pytest.fixture
def failing_server() -> Iterator[OneSessionFailsServer]:
    server = OneSessionFailsServer(refuse_after=60, pipelining=True, data_delay=DATA_DELAY)
    with server:
        yield server


@committed
def test_a_session_refused_by_the_server_defers_its_mail_and_loses_none(failing_server, settings):
    settings.CALMAIL_DELIVERY_BATCH_SIZE = 20
    total = 200
    configuration = configuration_for(
        failing_server, max_connections=4, max_messages_per_connection=1000
    )
    message_ids = enqueue_mails(configuration, total)

    stats = deliver(configuration)

    assert failing_server.refused_peer is not None
    assert failing_server.dropped_connections == 1
    counts = statuses(configuration)
    assert set(counts) == {Status.SENT, Status.DEFERRED}, counts
    sent = OutboxMessage.objects.filter(status=Status.SENT)
    deferred = OutboxMessage.objects.filter(status=Status.DEFERRED)
    # The mail refused with 421, and the rest of that session's batch when it could not
    # reconnect: each deferred with one attempt, none sent, none lost.
    assert counts[Status.DEFERRED] >= 2
    assert (stats.sent, stats.deferred, stats.failed) == (sent.count(), deferred.count(), 0)
    assert stats.sent + stats.deferred == total
    assert stats.sessions >= 2
    assert failing_server.most_sessions_at_once <= 4
    # (The texts are in the language active in the thread that wrote them: compare codes.)
    assert not deferred.filter(error_message="").exists()
    refused = DeliveryAttempt.objects.filter(outcome=AttemptOutcome.DEFERRED, reply_code=421)
    assert refused.count() == 1
    assert refused.get().reply_text == "4.3.2 Service shutting down"
    assert set(deferred.values_list("attempt_count", flat=True)) == {1}
    assert not deferred.filter(next_attempt_at__isnull=True).exists()
    assert received(failing_server) == Counter(sent.values_list("message_id", flat=True))
    attempts = Counter(DeliveryAttempt.objects.values_list("message_id", "outcome"))
    assert set(attempts.values()) == {1}
    assert {pk for pk, _outcome in attempts} == set(
        OutboxMessage.objects.values_list("pk", flat=True)
    )
    assert (
        sum(1 for _pk, outcome in attempts if outcome == AttemptOutcome.DEFERRED)
        == (counts[Status.DEFERRED])
    )
    assert_run_cleaned_up(configuration)

    # Their retry comes: every mail has now reached the server exactly once.
    deferred_ids = list(deferred.values_list("pk", flat=True))
    OutboxMessage.objects.filter(pk__in=deferred_ids).update(next_attempt_at=timezone.now())
    again = deliver(configuration)

    assert again.sent == len(deferred_ids)
    assert received(failing_server) == Counter(message_ids)
    assert statuses(configuration) == {Status.SENT: total}
    assert set(
        OutboxMessage.objects.filter(pk__in=deferred_ids).values_list("attempt_count", flat=True)
    ) == {2}
    assert DeliveryAttempt.objects.count() == total + len(deferred_ids)
    assert_run_cleaned_up(configuration)
