import email
import email.policy
import re
import threading
import time
from collections import Counter
from datetime import UTC, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mailbox.delivery import StopReason, sweep
from mailbox.mime import build_email
from mailbox.models import (
    AttachmentType,
    DeliveryAttempt,
    DeliverySlot,
    OutboxMessage,
    Status,
)
from mailbox.services import AttachmentSpec, enqueue, message_resend
from smtpconfig.models import SmtpConfiguration
from tests.mailbox.conftest import WORKER, configuration_for, deliver, due_mail
from tests.smtp_server import SilentServer, sendmail_configuration, unused_port

QUEUE_ID = re.compile(r"2\.0\.0 Ok: queued as [0-9A-F]{10}")


def reload(message: OutboxMessage) -> OutboxMessage:
    return OutboxMessage.objects.get(pk=message.pk)


def body(mail, subtype: str) -> str:
    # The wire format has CRLF line ends; compare text with plain newlines.
    return mail.get_body((subtype,)).get_content().replace("\r\n", "\n")


def received_ids(server) -> list[str]:
    return [str(received.message["Message-ID"]) for received in server.messages]


# Sent -------------------------------------------------------------------------------------


def test_deliver_sends_the_whole_message(configuration, smtp_server):
    message = enqueue(
        to=["lab@example.org"],
        cc=["quality@example.org"],
        bcc=["archive@example.org"],
        reply_to=["office@example.org"],
        subject="Kalibrierung fällig: Messschieber 4711",
        body_text="Guten Tag,\nder Messschieber ist fällig.",
        body_html="<p>Guten Tag,</p><p>der Messschieber ist <b>fällig</b>.</p>",
        from_email="labor@example.com",
        from_name="Müller, Kalibrierlabor",
        headers={"X-Calmail-Action": "42"},
        attachments=[
            AttachmentSpec("bericht.pdf", b"%PDF-1.4\x00\xff binary", "application/pdf"),
            AttachmentSpec("liste.csv", "Gerät;Fällig\n4711;2026-12-01\n".encode(), "text/csv"),
        ],
        smtp_configuration=configuration,
    )
    before = timezone.now()

    stats = deliver(configuration)

    after = timezone.now()
    assert (stats.sent, stats.deferred, stats.failed, stats.connections) == (1, 0, 0, 1)
    assert stats.stop_reason == StopReason.DRAINED
    [received] = smtp_server.messages
    assert received.sender == "labor@example.com"
    # Bcc is an envelope recipient only.
    assert received.recipients == ["lab@example.org", "quality@example.org", "archive@example.org"]
    mail = received.message
    assert mail["Bcc"] is None
    assert str(mail["Message-ID"]) == message.message_id
    assert mail["From"].addresses[0].display_name == "Müller, Kalibrierlabor"
    assert mail["From"].addresses[0].addr_spec == "labor@example.com"
    assert str(mail["To"]) == "lab@example.org"
    assert str(mail["Cc"]) == "quality@example.org"
    assert str(mail["Reply-To"]) == "office@example.org"
    assert str(mail["Subject"]) == "Kalibrierung fällig: Messschieber 4711"
    assert str(mail["X-Calmail-Action"]) == "42"
    assert body(mail, "plain") == "Guten Tag,\nder Messschieber ist fällig."
    assert body(mail, "html") == "<p>Guten Tag,</p><p>der Messschieber ist <b>fällig</b>.</p>"
    assert [
        (part.get_filename(), part.get_content_type(), part.get_payload(decode=True))
        for part in mail.iter_attachments()
    ] == [
        ("bericht.pdf", "application/pdf", b"%PDF-1.4\x00\xff binary"),
        # Text parts travel with CRLF line ends, as MIME wants.
        ("liste.csv", "text/csv", "Gerät;Fällig\r\n4711;2026-12-01\r\n".encode()),
    ]

    message = reload(message)
    assert message.status == Status.SENT
    assert before <= message.sent_at <= after
    assert message.attempt_count == 1
    assert message.error_message == ""
    assert message.next_attempt_at is None
    assert message.lease_expires_at is None
    assert message.claimed_by == ""

    [attempt] = DeliveryAttempt.objects.all()
    assert attempt.message_id == message.pk
    assert attempt.smtp_configuration_id == configuration.pk
    assert before <= attempt.started_at <= message.sent_at
    assert 0 <= attempt.duration_ms < 5000
    assert attempt.worker == WORKER
    assert attempt.outcome == "sent"
    assert attempt.reply_code == 250
    assert QUEUE_ID.fullmatch(attempt.reply_text)


def test_named_recipients_are_bare_in_the_envelope_and_named_in_the_header(
    configuration, smtp_server
):
    enqueue(
        to=["Laura Peters <lab@example.org>"],
        cc=["Jörg Müller <quality@example.org>"],
        subject="Kalibrierung fällig",
        body_text="Guten Tag",
        smtp_configuration=configuration,
    )

    deliver(configuration)

    [received] = smtp_server.messages
    assert received.recipients == ["lab@example.org", "quality@example.org"]
    assert str(received.message["To"]) == "Laura Peters <lab@example.org>"
    assert received.message["Cc"].addresses[0].display_name == "Jörg Müller"


def test_enqueue_builds_the_mail_once_and_the_engine_sends_those_bytes(configuration, smtp_server):
    message = enqueue(
        to=["lab@example.org"],
        bcc=["archive@example.org"],
        subject="Kalibrierung fällig: Messschieber 4711",
        body_text="Guten Tag,\n.eine Zeile mit Punkt am Anfang\nder Messschieber ist fällig.",
        body_html="<p>Guten Tag</p>",
        from_email="labor@example.com",
        from_name="Kalibrierlabor",
        smtp_configuration=configuration,
    )
    stored = bytes(reload(message).raw_message)
    assert stored.startswith(b"Content-Type: multipart/alternative")
    assert f"Message-ID: {message.message_id}".encode() in stored
    assert b"Bcc" not in stored

    deliver(configuration)

    [received] = smtp_server.messages
    # The server got exactly the stored bytes (the dot-stuffing undone), Bcc in the
    # envelope only.
    assert received.raw == stored
    assert received.recipients == ["lab@example.org", "archive@example.org"]
    assert reload(message).status == Status.SENT


def test_a_resend_sends_the_same_bytes_again(configuration, smtp_server):
    message = enqueue(
        to=["lab@example.org"],
        subject="Erinnerung",
        body_text="Text",
        smtp_configuration=configuration,
    )
    deliver(configuration)
    message_resend(message=reload(message))
    deliver(configuration)

    first, second = smtp_server.messages
    # (A content that does not end in a line break gets one on the wire.)
    assert first.raw == second.raw == bytes(reload(message).raw_message) + b"\r\n"


def test_planned_mail_is_dated_when_it_is_planned_for(configuration):
    planned = timezone.now() + timedelta(days=3)
    message = enqueue(
        to=["lab@example.org"],
        subject="Geplant",
        body_text="Text",
        scheduled_at=planned,
        smtp_configuration=configuration,
    )
    mail = email.message_from_bytes(bytes(message.raw_message), policy=email.policy.default)
    # Without EMAIL_USE_LOCALTIME Django dates mails in UTC, written as "-0000".
    assert mail["Date"].datetime.replace(tzinfo=UTC) == planned.replace(microsecond=0)


def test_mail_with_file_attachments_is_built_when_sent(configuration, smtp_server):
    message = enqueue(
        to=["lab@example.org"],
        subject="Bericht",
        body_text="Anbei der Bericht.",
        attachments=[AttachmentSpec("bericht.pdf", b"%PDF-1.4 report", "application/pdf")],
        smtp_configuration=configuration,
    )
    # The file stays in storage only; the row does not carry a second copy.
    assert bytes(reload(message).raw_message) == b""

    deliver(configuration)

    [received] = smtp_server.messages
    [part] = received.message.iter_attachments()
    assert part.get_payload(decode=True) == b"%PDF-1.4 report"


def test_rows_without_a_built_mail_are_built_when_sent(configuration, smtp_server):
    # Rows stored before enqueue() built mails (or made without it) still go out.
    message = due_mail(configuration, subject="Alt", body_text="Noch ohne fertige Mail")
    assert bytes(message.raw_message) == b""

    deliver(configuration)

    [received] = smtp_server.messages
    assert str(received.message["Message-ID"]) == message.message_id
    assert body(received.message, "plain").rstrip() == "Noch ohne fertige Mail"


def test_mails_built_when_sent_are_loaded_once_per_batch(configuration, smtp_server):
    # The claim reads only the envelope; the content and the files of the mails built
    # now come in one query each for the whole batch, not one per mail.
    for number in range(10):
        enqueue(
            to=[f"lab{number}@example.org"],
            subject=f"Bericht {number}",
            body_text="Anbei.",
            attachments=[AttachmentSpec(f"bericht{number}.pdf", b"%PDF-1.4", "application/pdf")],
            smtp_configuration=configuration,
        )

    with CaptureQueriesContext(connection) as captured:
        stats = deliver(configuration)

    assert (stats.sent, stats.batches) == (10, 1)
    statements = [query["sql"] for query in captured]
    content_reads = [sql for sql in statements if "body_text" in sql and sql.startswith("SELECT")]
    attachment_reads = [
        sql for sql in statements if "mailbox_outboxattachment" in sql and sql.startswith("SELECT")
    ]
    assert (len(content_reads), len(attachment_reads)) == (1, 1)
    assert sorted(
        part.get_filename()
        for mail in smtp_server.messages
        for part in mail.message.iter_attachments()
    ) == sorted(f"bericht{number}.pdf" for number in range(10))


def test_deliver_link_attachments_are_not_attached(configuration, smtp_server):
    message = enqueue(
        to=["lab@example.org"],
        subject="Bericht",
        body_text="Der Bericht liegt bereit.",
        attachments=[AttachmentSpec("bericht.pdf", b"%PDF-1.4", "application/pdf")],
        attachment_type=AttachmentType.LINK,
        smtp_configuration=configuration,
    )

    deliver(configuration)

    [received] = smtp_server.messages
    assert list(received.message.iter_attachments()) == []
    text = body(received.message, "plain")
    assert text.startswith("Der Bericht liegt bereit.\n\nDownloads (valid for 30 days):\n")
    [link] = re.findall(r"http://\S+", text)
    assert link.startswith("http://127.0.0.1:8000/outbox/download/")
    assert reload(message).status == Status.SENT


def test_build_email_keeps_message_id_across_builds(configuration):
    message = due_mail(configuration, from_name="Kalibrierlabor")

    first = build_email(message).message()
    second = build_email(message).message()

    assert first["Message-ID"] == second["Message-ID"] == message.message_id
    assert first["From"] == "Kalibrierlabor <kalibrierlabor@example.com>"


def test_deliver_sends_only_due_mail_of_its_configuration(configuration, smtp_server):
    other = configuration_for(smtp_server, name="Other server")
    now = timezone.now()
    due = due_mail(configuration)
    later = due_mail(configuration, next_attempt_at=now + timedelta(minutes=5))
    deferred_later = due_mail(
        configuration, status=Status.DEFERRED, next_attempt_at=now + timedelta(minutes=5)
    )
    scheduled = due_mail(configuration, status=Status.SCHEDULED, next_attempt_at=now)
    cancelled = due_mail(configuration, status=Status.CANCELLED)
    elsewhere = due_mail(other)
    deferred_due = due_mail(configuration, status=Status.DEFERRED, attempt_count=1)

    stats = deliver(configuration)

    assert stats.sent == 2
    assert sorted(received_ids(smtp_server)) == sorted([due.message_id, deferred_due.message_id])
    statuses = {m.pk: m.status for m in OutboxMessage.objects.all()}
    assert statuses == {
        due.pk: Status.SENT,
        later.pk: Status.QUEUED,
        deferred_later.pk: Status.DEFERRED,
        scheduled.pk: Status.SCHEDULED,
        cancelled.pk: Status.CANCELLED,
        elsewhere.pk: Status.QUEUED,
        deferred_due.pk: Status.SENT,
    }
    assert reload(deferred_due).attempt_count == 2


def test_deliver_nothing_due_does_not_connect(configuration, smtp_server):
    stats = deliver(configuration)

    assert stats.stop_reason == StopReason.DRAINED
    assert stats.claimed == 0
    assert smtp_server.connections_made == 0
    assert DeliverySlot.objects.count() == 0


def test_deliver_unknown_configuration_does_nothing(db):
    stats = deliver(SmtpConfiguration(pk=987654))

    assert stats.stop_reason == StopReason.NO_CONFIGURATION


def test_deliver_over_starttls_with_auth(db, smtp_server_auth, smtp_credentials, trust_test_ca):
    configuration = configuration_for(
        smtp_server_auth,
        smtp_auth=True,
        username=smtp_credentials.username,
        password=smtp_credentials.password,
    )
    messages = [due_mail(configuration) for _ in range(3)]

    stats = deliver(configuration)

    assert stats.sent == 3
    assert sorted(received_ids(smtp_server_auth)) == sorted(m.message_id for m in messages)
    # One login for the whole batch: the connection is reused.
    assert [a.success for a in smtp_server_auth.auth_attempts] == [True]


# Temporary and permanent failures ---------------------------------------------------------


def test_deliver_4xx_defers_then_succeeds_on_a_later_run(configuration, smtp_server):
    message = due_mail(configuration)
    smtp_server.fail_rcpt = (451, "4.7.1 Try again later")
    before = timezone.now()

    stats = deliver(configuration)

    assert (stats.sent, stats.deferred, stats.failed) == (0, 1, 0)
    assert smtp_server.messages == []
    message = reload(message)
    assert message.status == Status.DEFERRED
    assert message.attempt_count == 1
    assert message.error_message == (
        f"All recipients were refused: {message.recipient}: 451 4.7.1 Try again later"
    )
    # First backoff step: 60 s, with ±10 % jitter.
    assert before + timedelta(seconds=54) <= message.next_attempt_at
    assert message.next_attempt_at <= timezone.now() + timedelta(seconds=66)
    assert message.lease_expires_at is None
    assert message.claimed_by == ""
    [attempt] = DeliveryAttempt.objects.all()
    assert (attempt.outcome, attempt.reply_code, attempt.reply_text) == (
        "deferred",
        451,
        "4.7.1 Try again later",
    )

    smtp_server.reset()
    # Not due yet: nothing happens.
    assert deliver(configuration).claimed == 0

    with time_machine.travel(message.next_attempt_at + timedelta(seconds=1)):
        stats = deliver(configuration)

    assert stats.sent == 1
    assert received_ids(smtp_server) == [message.message_id]
    message = reload(message)
    assert message.status == Status.SENT
    assert message.attempt_count == 2
    assert message.error_message == ""
    assert list(DeliveryAttempt.objects.values_list("outcome", "reply_code")) == [
        ("deferred", 451),
        ("sent", 250),
    ]


def test_deliver_4xx_after_data_defers(configuration, smtp_server):
    message = due_mail(configuration)
    smtp_server.fail_data = (452, "4.3.1 Insufficient system storage")

    deliver(configuration)

    message = reload(message)
    assert message.status == Status.DEFERRED
    assert message.error_message == "Message refused: 452 4.3.1 Insufficient system storage"


def test_deliver_5xx_fails_at_once(configuration, smtp_server):
    message = due_mail(configuration)
    smtp_server.fail_data = (554, "5.7.1 Message rejected as spam")

    stats = deliver(configuration)

    assert (stats.sent, stats.deferred, stats.failed) == (0, 0, 1)
    message = reload(message)
    assert message.status == Status.FAILED
    assert message.attempt_count == 1
    assert message.next_attempt_at is None
    assert message.error_message == "Message refused: 554 5.7.1 Message rejected as spam"
    [attempt] = DeliveryAttempt.objects.all()
    assert (attempt.outcome, attempt.reply_code, attempt.reply_text) == (
        "failed",
        554,
        "5.7.1 Message rejected as spam",
    )


def test_deliver_sender_refused_fails(configuration, smtp_server):
    message = due_mail(configuration)
    smtp_server.fail_mail = (553, "5.7.1 Sender address rejected")

    deliver(configuration)

    message = reload(message)
    assert message.status == Status.FAILED
    assert message.error_message == "Sender refused: 553 5.7.1 Sender address rejected"


def test_deliver_one_refused_recipient_among_several_is_sent(configuration, smtp_server):
    message = due_mail(
        configuration, to=["a@example.org", "unknown@example.org"], cc=["c@example.org"]
    )
    smtp_server.reject_recipients = {"unknown@example.org": (550, "5.1.1 User unknown")}

    stats = deliver(configuration)

    assert stats.sent == 1
    [received] = smtp_server.messages
    assert received.recipients == ["a@example.org", "c@example.org"]
    message = reload(message)
    assert message.status == Status.SENT
    assert message.error_message == (
        "Sent, but not to these recipients: unknown@example.org: 550 5.1.1 User unknown"
    )


def test_deliver_all_recipients_refused_fails(configuration, smtp_server):
    message = due_mail(configuration, to=["a@example.org", "b@example.org"])
    smtp_server.reject_recipients = {
        "a@example.org": (550, "5.1.1 User unknown"),
        "b@example.org": (553, "5.1.3 Bad address"),
    }

    deliver(configuration)

    message = reload(message)
    assert message.status == Status.FAILED
    assert message.error_message == (
        "All recipients were refused: a@example.org: 550 5.1.1 User unknown; "
        "b@example.org: 553 5.1.3 Bad address"
    )


def test_deliver_recipients_refused_partly_temporarily_defers(configuration, smtp_server):
    message = due_mail(configuration, to=["a@example.org", "b@example.org"])
    smtp_server.reject_recipients = {
        "a@example.org": (550, "5.1.1 User unknown"),
        "b@example.org": (450, "4.2.1 Mailbox busy"),
    }

    deliver(configuration)

    assert reload(message).status == Status.DEFERRED


def test_deliver_refused_mail_does_not_stop_the_batch(configuration, smtp_server):
    first = due_mail(configuration)
    refused = due_mail(configuration, to=["unknown@example.org"])
    last = due_mail(configuration)
    smtp_server.reject_recipients = {"unknown@example.org": (550, "5.1.1 User unknown")}

    stats = deliver(configuration)

    assert (stats.sent, stats.failed, stats.connections) == (2, 1, 1)
    assert received_ids(smtp_server) == [first.message_id, last.message_id]
    assert reload(refused).status == Status.FAILED


def test_deliver_retries_exhausted_fails(configuration, smtp_server, settings):
    settings.CALMAIL_RETRY_BACKOFF = [60, 300]
    message = due_mail(configuration, status=Status.DEFERRED, attempt_count=2)
    smtp_server.fail_rcpt = (451, "4.7.1 Try again later")

    stats = deliver(configuration)

    assert stats.failed == 1
    message = reload(message)
    assert message.status == Status.FAILED
    assert message.attempt_count == 3
    assert message.next_attempt_at is None
    assert message.error_message == (
        "Gave up after 3 attempts: All recipients were refused: "
        f"{message.recipient}: 451 4.7.1 Try again later"
    )


def test_deliver_backoff_grows_with_attempts(configuration, smtp_server, settings):
    settings.CALMAIL_RETRY_BACKOFF = [60, 300, 1800]
    message = due_mail(configuration, status=Status.DEFERRED, attempt_count=2)
    smtp_server.fail_rcpt = (451, "4.7.1 Try again later")
    before = timezone.now()

    deliver(configuration)

    message = reload(message)
    assert message.attempt_count == 3
    assert before + timedelta(seconds=1620) <= message.next_attempt_at
    assert message.next_attempt_at <= timezone.now() + timedelta(seconds=1980)


def test_deliver_unreadable_attachment_fails_that_mail_only(configuration, smtp_server):
    broken = enqueue(
        to=["lab@example.org"],
        subject="Bericht",
        attachments=[AttachmentSpec("bericht.pdf", b"%PDF-1.4", "application/pdf")],
        smtp_configuration=configuration,
    )
    attachment = broken.attachments.get()
    attachment.file.storage.delete(attachment.file.name)
    fine = due_mail(configuration)

    stats = deliver(configuration)

    assert (stats.sent, stats.failed) == (1, 1)
    assert received_ids(smtp_server) == [fine.message_id]
    broken = reload(broken)
    assert broken.status == Status.FAILED
    assert broken.error_message == (
        "The attachment bericht.pdf cannot be read: No such file or directory"
    )


# Connections ------------------------------------------------------------------------------


def test_deliver_reuses_one_connection(configuration, smtp_server):
    for _ in range(5):
        due_mail(configuration)

    stats = deliver(configuration)

    assert (stats.sent, stats.connections) == (5, 1)
    assert smtp_server.connections_made == 1


def test_deliver_reconnects_after_max_messages_per_connection(configuration, smtp_server):
    configuration.max_messages_per_connection = 2
    configuration.save()
    messages = [due_mail(configuration) for _ in range(5)]

    stats = deliver(configuration)

    assert (stats.sent, stats.connections) == (5, 3)
    assert smtp_server.connections_made == 3
    assert received_ids(smtp_server) == [m.message_id for m in messages]


def test_deliver_reconnects_after_a_dropped_connection(configuration, smtp_server):
    smtp_server.drop_after_messages = 2
    messages = [due_mail(configuration) for _ in range(5)]

    stats = deliver(configuration)

    assert (stats.sent, stats.deferred, stats.connections) == (5, 0, 3)
    assert smtp_server.connections_made == 3
    # Each mail exactly once, in order.
    assert received_ids(smtp_server) == [m.message_id for m in messages]
    assert set(OutboxMessage.objects.values_list("status", "attempt_count")) == {(Status.SENT, 1)}


def test_deliver_connection_dropped_again_after_reconnect_defers_the_batch(
    configuration, smtp_server
):
    smtp_server.drop_after_messages = 0
    messages = [due_mail(configuration) for _ in range(3)]

    stats = deliver(configuration)

    assert (stats.sent, stats.deferred) == (0, 3)
    assert stats.stop_reason == StopReason.CONNECTION_FAILED
    # The first connection and one retry, not one per mail.
    assert smtp_server.connections_made == 2
    for message in messages:
        message = reload(message)
        assert message.status == Status.DEFERRED
        assert message.attempt_count == 1
        assert message.error_message == "The server closed the connection unexpectedly"
    assert DeliveryAttempt.objects.filter(outcome="deferred").count() == 3


def test_deliver_421_closes_and_next_mail_reconnects(configuration, smtp_server):
    for _ in range(2):
        due_mail(configuration)
    smtp_server.fail_data = (421, "4.3.2 Service shutting down")

    stats = deliver(configuration)

    assert (stats.deferred, stats.connections) == (2, 2)
    assert set(OutboxMessage.objects.values_list("error_message", flat=True)) == {
        "Message refused: 421 4.3.2 Service shutting down"
    }


def test_deliver_silent_server_times_out_and_defers(db):
    with SilentServer() as server:
        configuration = configuration_for(server, timeout=1)
        messages = [due_mail(configuration) for _ in range(3)]

        stats = deliver(configuration)

    assert (stats.sent, stats.deferred, stats.connections) == (0, 3, 0)
    assert stats.stop_reason == StopReason.CONNECTION_FAILED
    for message in messages:
        message = reload(message)
        assert message.status == Status.DEFERRED
        assert message.attempt_count == 1
        assert message.error_message == "Timed out after 1 s"
    attempts = list(DeliveryAttempt.objects.order_by("id"))
    assert [(a.outcome, a.reply_code, a.reply_text) for a in attempts] == [
        ("deferred", None, "Timed out after 1 s")
    ] * 3
    # The first mail waited for the server; the others were deferred with it.
    assert attempts[0].duration_ms >= 900
    assert [a.duration_ms for a in attempts[1:]] == [0, 0]


def test_deliver_connection_refused_defers(db):
    port = unused_port()
    configuration = SmtpConfiguration.objects.create(
        name="Down", host="127.0.0.1", port=port, security="none", timeout=2
    )
    message = due_mail(configuration)

    stats = deliver(configuration)

    assert stats.stop_reason == StopReason.CONNECTION_FAILED
    message = reload(message)
    assert message.status == Status.DEFERRED
    assert message.error_message == f"Connection refused by 127.0.0.1:{port}"
    # No server reply came: the attempt says why instead of nothing.
    [attempt] = message.attempts.all()
    assert (attempt.reply_code, attempt.reply_text) == (
        None,
        f"Connection refused by 127.0.0.1:{port}",
    )


def test_deliver_wrong_password_defers_without_hammering(
    db, smtp_server_auth, smtp_credentials, trust_test_ca
):
    configuration = configuration_for(
        smtp_server_auth,
        smtp_auth=True,
        username=smtp_credentials.username,
        password="wrong password",
    )
    messages = [due_mail(configuration) for _ in range(3)]

    stats = deliver(configuration)

    assert stats.deferred == 3
    # One connection for the batch (on it, smtplib tries PLAIN, then LOGIN).
    assert smtp_server_auth.connections_made == 1
    assert [a.success for a in smtp_server_auth.auth_attempts] == [False, False]
    for message in messages:
        message = reload(message)
        assert message.status == Status.DEFERRED
        assert message.error_message.startswith("Authentication failed: 535 ")
        assert "wrong password" not in message.error_message
    assert set(DeliveryAttempt.objects.values_list("reply_code", flat=True)) == {535}


def test_deliver_password_quoted_by_the_server_is_masked(
    db, smtp_server_auth, smtp_credentials, trust_test_ca
):
    # A server that quotes the credentials it refuses (issue 12, item 9).
    smtp_server_auth.auth_failure_reply = (
        "535 5.7.8 Authentication failed for {username} {password}"
    )
    password = "Falsch-" + smtp_credentials.password
    configuration = configuration_for(
        smtp_server_auth, smtp_auth=True, username="mailer", password=password
    )
    message = due_mail(configuration)

    deliver(configuration)

    message = reload(message)
    assert message.status == Status.DEFERRED
    assert message.error_message == (
        "Authentication failed: 535 5.7.8 Authentication failed for mailer ********"
    )
    assert list(DeliveryAttempt.objects.values_list("reply_code", "reply_text")) == [
        (535, "5.7.8 Authentication failed for mailer ********")
    ]


def test_deliver_password_quoted_in_the_servers_acceptance_is_masked(
    db, smtp_server_auth, smtp_credentials, trust_test_ca
):
    smtp_server_auth.data_reply = (250, f"2.0.0 Ok: queued for mailer {smtp_credentials.password}")
    configuration = configuration_for(
        smtp_server_auth,
        smtp_auth=True,
        username=smtp_credentials.username,
        password=smtp_credentials.password,
    )
    message = due_mail(configuration)

    deliver(configuration)

    assert reload(message).status == Status.SENT
    assert list(DeliveryAttempt.objects.values_list("reply_code", "reply_text")) == [
        (250, "2.0.0 Ok: queued for mailer ********")
    ]


def test_deliver_undecryptable_password_defers_before_connecting(configuration, smtp_server):
    from calmail.common.fields import UndecryptableSecret

    SmtpConfiguration.objects.filter(pk=configuration.pk).update(
        smtp_auth=True, username="mailer", password=UndecryptableSecret("not-a-fernet-token")
    )
    message = due_mail(configuration)

    deliver(configuration)

    assert smtp_server.connections_made == 0
    message = reload(message)
    assert message.status == Status.DEFERRED
    assert message.error_message.startswith("The stored password cannot be decrypted")


def test_deliver_unreadable_ca_file_defers(db, smtp_server_starttls, settings, tmp_path):
    settings.CALMAIL_SMTP_CA_FILE = str(tmp_path / "missing-ca.pem")
    configuration = configuration_for(smtp_server_starttls)
    message = due_mail(configuration)

    deliver(configuration)

    message = reload(message)
    assert message.status == Status.DEFERRED
    assert message.error_message.startswith(
        f"The CA file {tmp_path / 'missing-ca.pem'} (CALMAIL_SMTP_CA_FILE) cannot be loaded"
    )


# sendmail ---------------------------------------------------------------------------------


def saved_sendmail_configuration(path) -> SmtpConfiguration:
    configuration = sendmail_configuration(path)
    configuration.save()
    return configuration


def test_deliver_through_sendmail(db, fake_sendmail):
    configuration = saved_sendmail_configuration(fake_sendmail)
    message = due_mail(configuration, to=["lab@example.org"], bcc=["archive@example.org"])

    stats = deliver(configuration)

    assert (stats.sent, stats.connections) == (1, 0)
    argv = (fake_sendmail.parent / "argv").read_text().splitlines()
    assert argv == [
        "-i",
        "-f",
        "kalibrierlabor@example.com",
        "--",
        "lab@example.org",
        "archive@example.org",
    ]
    stdin = (fake_sendmail.parent / "stdin").read_bytes()
    assert f"Message-ID: {message.message_id}\n".encode() in stdin
    message = reload(message)
    assert message.status == Status.SENT
    [attempt] = DeliveryAttempt.objects.all()
    assert (attempt.outcome, attempt.reply_code, attempt.reply_text) == ("sent", None, "")


@pytest.mark.parametrize(("exit_status", "status"), [("75", Status.DEFERRED), ("1", Status.FAILED)])
def test_deliver_sendmail_failure(db, fake_sendmail, monkeypatch, exit_status, status):
    configuration = saved_sendmail_configuration(fake_sendmail)
    message = due_mail(configuration)
    monkeypatch.setenv("FAKE_SENDMAIL_EXIT", exit_status)

    deliver(configuration)

    message = reload(message)
    assert message.status == status
    assert message.error_message == (
        f"sendmail failed with exit status {exit_status}: "
        "sendmail: fatal: simulated failure for testing"
    )


def test_deliver_sendmail_missing_binary_defers(db, tmp_path):
    configuration = saved_sendmail_configuration(tmp_path / "no-sendmail")
    message = due_mail(configuration)

    stats = deliver(configuration)

    assert stats.stop_reason == StopReason.CONNECTION_FAILED
    message = reload(message)
    assert message.status == Status.DEFERRED
    assert message.error_message == f"The sendmail binary {tmp_path / 'no-sendmail'} does not exist"


# Limits -----------------------------------------------------------------------------------


def test_deliver_stops_after_max_messages(configuration, smtp_server):
    for _ in range(5):
        due_mail(configuration)

    stats = deliver(configuration, max_messages=2)

    assert stats.sent == 2
    assert stats.stop_reason == StopReason.MAX_MESSAGES
    assert stats.more_due is True
    assert stats.should_continue is True
    assert OutboxMessage.objects.filter(status=Status.QUEUED).count() == 3


def test_deliver_works_in_batches(configuration, smtp_server, settings):
    settings.CALMAIL_DELIVERY_BATCH_SIZE = 2
    for _ in range(5):
        due_mail(configuration)

    stats = deliver(configuration)

    assert (stats.sent, stats.batches, stats.connections) == (5, 3, 1)
    assert stats.more_due is False
    assert stats.should_continue is False


def test_deliver_stops_after_its_time_budget(configuration, smtp_server, settings):
    settings.CALMAIL_DELIVERY_BATCH_SIZE = 2
    settings.CALMAIL_DELIVERY_RUN_SECONDS = 0
    for _ in range(5):
        due_mail(configuration)

    stats = deliver(configuration)

    # At least one batch per run, then hand over.
    assert (stats.sent, stats.stop_reason, stats.more_due) == (2, StopReason.TIME_BUDGET, True)


def test_deliver_rate_limit_per_minute(configuration, smtp_server):
    configuration.rate_limit_per_minute = 3
    configuration.save()
    messages = [due_mail(configuration) for _ in range(5)]

    stats = deliver(configuration)

    assert stats.sent == 3
    assert stats.stop_reason == StopReason.RATE_LIMITED
    first = DeliveryAttempt.objects.order_by("started_at").first()
    assert stats.rate_limited_until == first.started_at + timedelta(minutes=1)
    assert received_ids(smtp_server) == [m.message_id for m in messages[:3]]
    # The rest is untouched: still queued, no attempt counted.
    assert [(reload(m).status, reload(m).attempt_count) for m in messages[3:]] == [
        (Status.QUEUED, 0)
    ] * 2

    # Within the minute nothing more goes out.
    assert deliver(configuration).sent == 0

    with time_machine.travel(stats.rate_limited_until + timedelta(seconds=1)):
        later = deliver(configuration)

    assert later.sent == 2
    assert received_ids(smtp_server) == [m.message_id for m in messages]


def test_deliver_rate_limit_per_hour(configuration, smtp_server):
    configuration.rate_limit_per_minute = 10
    configuration.rate_limit_per_hour = 2
    configuration.save()
    for _ in range(4):
        due_mail(configuration)

    stats = deliver(configuration)

    assert stats.sent == 2
    first = DeliveryAttempt.objects.order_by("started_at").first()
    assert stats.rate_limited_until == first.started_at + timedelta(hours=1)
    with time_machine.travel(first.started_at + timedelta(minutes=30)):
        assert deliver(configuration).sent == 0


def test_deliver_rate_limit_counts_only_successful_sends(configuration, smtp_server):
    configuration.rate_limit_per_minute = 2
    configuration.save()
    refused = due_mail(configuration, to=["unknown@example.org"])
    smtp_server.reject_recipients = {"unknown@example.org": (550, "5.1.1 User unknown")}
    for _ in range(3):
        due_mail(configuration)

    stats = deliver(configuration)

    # Claims stay within the allowance; the refused mail does not use up the minute.
    assert (stats.sent, stats.failed) == (2, 1)
    assert reload(refused).status == Status.FAILED


def test_deliver_without_free_slot_leaves_mail_alone(configuration, smtp_server):
    configuration.max_connections = 1
    configuration.save()
    now = timezone.now()
    DeliverySlot.objects.create(
        smtp_configuration=configuration,
        number=0,
        holder="other-host:1",
        lease_expires_at=now + timedelta(minutes=5),
    )
    message = due_mail(configuration)

    stats = deliver(configuration)

    assert stats.stop_reason == StopReason.NO_SLOT
    assert smtp_server.connections_made == 0
    assert reload(message).status == Status.QUEUED

    # The holder died: its lease expires and the slot is taken over.
    DeliverySlot.objects.update(lease_expires_at=now - timedelta(seconds=1))
    stats = deliver(configuration)

    assert stats.sent == 1
    slot = DeliverySlot.objects.get()
    assert (slot.holder, slot.lease_expires_at) == ("", None)


def test_deliver_takes_a_second_slot_and_releases_it(configuration, smtp_server):
    DeliverySlot.objects.create(
        smtp_configuration=configuration,
        number=0,
        holder="other-host:1",
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )
    due_mail(configuration)

    stats = deliver(configuration)

    assert stats.sent == 1
    assert list(DeliverySlot.objects.values_list("number", "holder")) == [
        (0, "other-host:1"),
        (1, ""),
    ]


def test_deliver_reports_backlog_once_when_a_slot_is_free(configuration, smtp_server, settings):
    settings.CALMAIL_DELIVERY_BATCH_SIZE = 2
    for _ in range(5):
        due_mail(configuration)
    calls = []

    stats = deliver(configuration, on_backlog=lambda: calls.append(1))

    assert stats.sent == 5
    assert calls == [1]


def test_deliver_reports_no_backlog_with_one_connection(configuration, smtp_server, settings):
    settings.CALMAIL_DELIVERY_BATCH_SIZE = 2
    configuration.max_connections = 1
    configuration.save()
    for _ in range(5):
        due_mail(configuration)
    calls = []

    deliver(configuration, on_backlog=lambda: calls.append(1))

    assert calls == []


# Sweeper ----------------------------------------------------------------------------------


def test_sweep_takes_back_expired_leases(configuration, django_capture_on_commit_callbacks):
    now = timezone.now()
    dead = due_mail(
        configuration,
        status=Status.SENDING,
        claimed_by="dead-host:1",
        lease_expires_at=now - timedelta(seconds=1),
        next_attempt_at=now - timedelta(minutes=10),
    )
    alive = due_mail(
        configuration,
        status=Status.SENDING,
        claimed_by="live-host:1",
        lease_expires_at=now + timedelta(minutes=4),
    )

    with django_capture_on_commit_callbacks() as callbacks:
        stats = sweep(now=now)

    assert stats.recovered == 1
    dead = reload(dead)
    assert (dead.status, dead.claimed_by, dead.lease_expires_at) == (Status.QUEUED, "", None)
    assert reload(alive).status == Status.SENDING
    assert stats.dispatched == [configuration.pk]
    assert len(callbacks) == 1


def test_sweep_recovered_mail_is_sent_again(configuration, smtp_server):
    message = due_mail(
        configuration,
        status=Status.SENDING,
        claimed_by="dead-host:1",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )

    sweep()
    deliver(configuration)

    assert received_ids(smtp_server) == [message.message_id]
    assert reload(message).status == Status.SENT


def test_sweep_queues_scheduled_mail_whose_time_came(configuration):
    now = timezone.now()
    due = due_mail(configuration, status=Status.SCHEDULED, next_attempt_at=now)
    future = due_mail(
        configuration, status=Status.SCHEDULED, next_attempt_at=now + timedelta(minutes=1)
    )

    stats = sweep(now=now)

    assert stats.scheduled == 1
    assert reload(due).status == Status.QUEUED
    assert reload(future).status == Status.SCHEDULED
    assert stats.dispatched == [configuration.pk]


def test_sweep_dispatches_only_configurations_with_due_mail(
    configuration, smtp_server, django_capture_on_commit_callbacks
):
    now = timezone.now()
    idle = configuration_for(smtp_server, name="Idle")
    later = configuration_for(smtp_server, name="Later")
    deferred = configuration_for(smtp_server, name="Deferred")
    due_mail(configuration, next_attempt_at=now)
    due_mail(idle, status=Status.SENT)
    due_mail(later, status=Status.DEFERRED, next_attempt_at=now + timedelta(minutes=3))
    due_mail(deferred, status=Status.DEFERRED, next_attempt_at=now - timedelta(seconds=1))

    with django_capture_on_commit_callbacks() as callbacks:
        stats = sweep(now=now)

    assert stats.dispatched == [configuration.pk, deferred.pk]
    assert len(callbacks) == 2
    assert (stats.recovered, stats.scheduled) == (0, 0)


def test_sweep_with_nothing_to_do(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        stats = sweep()

    assert stats.as_dict() == {"recovered": 0, "scheduled": 0, "dispatched": []}
    assert callbacks == []


# Concurrency ------------------------------------------------------------------------------


def run_workers(configuration, count: int) -> list:
    """count deliver_due runs in parallel threads, each with its own database connection."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list = []

    def work(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = deliver(configuration, worker_id=f"worker-{index}:{index}")
        except Exception as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_never_send_a_mail_twice(smtp_server, settings):
    settings.CALMAIL_DELIVERY_BATCH_SIZE = 5
    configuration = configuration_for(smtp_server, max_connections=4)
    OutboxMessage.objects.bulk_create(
        [
            OutboxMessage(
                source="system",
                recipient=f"r{n}@example.org",
                to=[f"r{n}@example.org"],
                from_email="calmail@example.com",
                subject=f"Mail {n}",
                body_text="Text",
                message_id=f"<concurrent.{n}@example.com>",
                smtp_configuration=configuration,
                status=Status.QUEUED,
                next_attempt_at=timezone.now(),
            )
            for n in range(120)
        ]
    )

    results = run_workers(configuration, 4)

    counts = Counter(received_ids(smtp_server))
    assert len(counts) == 120
    assert set(counts.values()) == {1}
    assert sum(result.sent for result in results) == 120
    assert set(OutboxMessage.objects.values_list("status", "attempt_count")) == {(Status.SENT, 1)}
    assert DeliveryAttempt.objects.count() == 120
    assert set(DeliverySlot.objects.values_list("holder", flat=True)) == {""}


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_respect_max_connections(smtp_server):
    configuration = configuration_for(smtp_server, max_connections=1)
    for _ in range(10):
        due_mail(configuration)
    # The slot is held: every concurrent run must give up without connecting.
    DeliverySlot.objects.create(
        smtp_configuration=configuration,
        number=0,
        holder="holder:1",
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )

    results = run_workers(configuration, 3)

    assert {result.stop_reason for result in results} == {StopReason.NO_SLOT}
    assert smtp_server.connections_made == 0
    assert DeliverySlot.objects.count() == 1


def in_own_thread(function):
    """A server hook that runs function in a thread of its own (with its own database
    connection): the server's thread is an asyncio loop, where Django refuses queries."""

    def hook() -> None:
        def work() -> None:
            try:
                function()
            finally:
                connection.close()

        thread = threading.Thread(target=work)
        thread.start()
        thread.join(timeout=30)

    return hook


@pytest.mark.django_db(transaction=True)
def test_deliver_stops_when_its_rows_were_taken_back(smtp_server):
    configuration = configuration_for(smtp_server)
    messages = [due_mail(configuration) for _ in range(3)]

    def sweeper_meanwhile():
        # While the first mail is on the wire, the sweeper takes the batch back (as it
        # would from a worker whose lease expired).
        smtp_server.before_data_reply = None
        OutboxMessage.objects.filter(status=Status.SENDING).update(
            status=Status.QUEUED, claimed_by="", lease_expires_at=None
        )

    smtp_server.before_data_reply = in_own_thread(sweeper_meanwhile)

    stats = deliver(configuration)

    assert stats.stop_reason == StopReason.LEASE_LOST
    assert (stats.sent, stats.released) == (0, 0)
    # The mail that went out is recorded, and nothing else of the batch was sent.
    assert received_ids(smtp_server) == [messages[0].message_id]
    assert list(DeliveryAttempt.objects.values_list("message_id", "outcome")) == [
        (messages[0].pk, "sent")
    ]
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {Status.QUEUED}

    deliver(configuration)

    # At least once: the mail in flight when its row was taken back goes out again.
    assert Counter(received_ids(smtp_server)) == Counter(
        {messages[0].message_id: 2, messages[1].message_id: 1, messages[2].message_id: 1}
    )


@pytest.mark.django_db(transaction=True)
def test_deliver_gives_back_unsent_rows_when_its_slot_was_taken(smtp_server, settings):
    settings.CALMAIL_SENDING_LEASE_SECONDS = 3
    configuration = configuration_for(smtp_server, max_connections=1)
    messages = [due_mail(configuration) for _ in range(3)]

    def slot_taken_meanwhile():
        # The first mail takes longer than a third of the lease, so the worker renews
        # before the next one, and finds its slot taken by another worker.
        smtp_server.before_data_reply = None
        DeliverySlot.objects.update(holder="thief:1")
        time.sleep(1.2)

    smtp_server.before_data_reply = in_own_thread(slot_taken_meanwhile)

    stats = deliver(configuration)

    assert stats.stop_reason == StopReason.LEASE_LOST
    assert (stats.sent, stats.released) == (2, 1)
    assert received_ids(smtp_server) == [messages[0].message_id, messages[1].message_id]
    last = reload(messages[2])
    assert (last.status, last.attempt_count, last.claimed_by, last.lease_expires_at) == (
        Status.QUEUED,
        0,
        "",
        None,
    )
    # The slot stays with the worker that took it.
    assert list(DeliverySlot.objects.values_list("holder", flat=True)) == ["thief:1"]


def test_deliver_takes_over_the_slot_of_a_holder_process_that_died_here(configuration, smtp_server):
    """A worker process killed on this host leaves its slot behind; the next worker here
    sees the process is gone and does not wait out the lease."""
    import socket
    import subprocess

    configuration.max_connections = 1
    configuration.save()
    finished = subprocess.Popen(["true"])
    finished.wait()
    DeliverySlot.objects.create(
        smtp_configuration=configuration,
        number=0,
        holder=f"w9@{socket.gethostname()}:{finished.pid}",
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )
    due_mail(configuration)

    stats = deliver(configuration)

    assert stats.sent == 1
    assert DeliverySlot.objects.get().holder == ""


def test_deliver_leaves_the_slot_of_a_living_holder_process_here(configuration, smtp_server):
    import os
    import socket

    configuration.max_connections = 1
    configuration.save()
    DeliverySlot.objects.create(
        smtp_configuration=configuration,
        number=0,
        holder=f"w9@{socket.gethostname()}:{os.getppid()}",
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )
    message = due_mail(configuration)

    stats = deliver(configuration)

    assert stats.stop_reason == StopReason.NO_SLOT
    assert reload(message).status == Status.QUEUED
