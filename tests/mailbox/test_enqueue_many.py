"""enqueue_many(): thousands of mails validated, stored and nudged in chunks, each bad mail
reported by its position, each idempotency key stored once (also across concurrent
callers); enqueue() is one mail of it."""

import email
import email.policy
import re
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import formatdate

import pytest
import time_machine
from celery.signals import before_task_publish
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from mailbox.dispatch import DELIVER_CONFIGURATION
from mailbox.links import attachment_uuid_from_token
from mailbox.models import AttachmentType, OutboxAttachment, OutboxMessage, Status
from mailbox.services import (
    AttachmentSpec,
    BatchValidationError,
    EnqueueResult,
    OutgoingMail,
    enqueue,
    enqueue_many,
)
from smtpconfig.models import SmtpConfiguration
from tests.factories import OutboxMessageFactory, SmtpConfigurationFactory
from tests.integration.conftest import celery_publishing_to

LINE_BREAK_ERROR = "Line breaks are not allowed here (they could inject mail headers)."
NO_CONFIGURATION_ERROR = "There is no SMTP configuration to send through."

requires_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="concurrent INSERT … ON CONFLICT needs PostgreSQL (SQLite serialises writers)",
)


@pytest.fixture
def default_configuration(db) -> SmtpConfiguration:
    return SmtpConfigurationFactory(is_default=True, from_email="labor@example.com")


@pytest.fixture
def published():
    """The delivery tasks published while the test runs, to an in-memory broker: one
    (configuration id, mails stored at that moment) per task."""
    tasks: list[tuple[int, int]] = []

    def record(sender=None, body=None, **kwargs):
        if sender == DELIVER_CONFIGURATION:
            args, _kwargs, _embed = body
            tasks.append((args[0], OutboxMessage.objects.count()))

    with celery_publishing_to("memory://localhost//"):
        before_task_publish.connect(record, weak=False)
        try:
            yield tasks
        finally:
            before_task_publish.disconnect(record)


def mail(number: int = 0, **fields) -> OutgoingMail:
    fields.setdefault("to", [f"empfaenger{number}@kunde.example"])
    fields.setdefault("subject", f"Kalibrierung fällig {number}")
    fields.setdefault("body_text", f"Guten Tag,\nIhr Prüfmittel {number} ist fällig.\n")
    return OutgoingMail(**fields)


def read(attachment: OutboxAttachment) -> bytes:
    with attachment.file.storage.open(attachment.file.name, "rb") as handle:
        return handle.read()


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(bytes(raw), policy=email.policy.default)


def texts(raw: bytes) -> dict[str, str]:
    """The text parts of a stored raw message by content type."""
    return {
        part.get_content_type(): part.get_content()
        for part in parsed(raw).walk()
        if part.get_content_maintype() == "text"
    }


# --- bad mails by position ------------------------------------------------------------------


def test_bad_mails_are_reported_by_position_and_good_ones_stored(db, settings, media_root):
    settings.CALMAIL_ATTACHMENT_MAX_BYTES = 1_000_000
    # No default configuration: a mail that names none has nothing to go through.
    configuration = SmtpConfigurationFactory(from_email="labor@example.com")
    good = {"smtp_configuration": configuration}
    mails = [
        mail(0, **good),
        mail(1, to=["lab@example.org", "not-an-address"], **good),
        mail(2, **good),
        mail(3, subject="   ", **good),
        mail(4, subject="Hallo\r\nBcc: victim@example.org", **good),
        mail(5, attachments=[AttachmentSpec("gross.bin", b"x" * 1_500_000)], **good),
        mail(6, from_email="labor@example.com"),
        mail(7, cc=["cc at example.org"], subject="", **good),
        mail(8, **good),
    ]

    result = enqueue_many(mails)

    assert {position: error.message_dict for position, error in result.errors.items()} == {
        1: {"to": ["“not-an-address” is not a valid e-mail address."]},
        3: {"subject": ["Enter a subject."]},
        4: {"subject": [LINE_BREAK_ERROR]},
        5: {"attachments": ["gross.bin is 1.5 MB; at most 1 MB are allowed."]},
        6: {"smtp_configuration": [NO_CONFIGURATION_ERROR]},
        # Every bad field of a mail, each in its own message.
        7: {
            "cc": ["“cc at example.org” is not a valid e-mail address."],
            "subject": ["Enter a subject."],
        },
    }
    assert len(result.messages) == len(mails)
    assert [message is None for message in result.messages] == [
        False,
        True,
        False,
        True,
        True,
        True,
        True,
        True,
        False,
    ]
    # Each good position holds its own mail, stored.
    for position in (0, 2, 8):
        stored = OutboxMessage.objects.get(pk=result.messages[position].pk)
        assert (stored.subject, stored.to, stored.status) == (
            f"Kalibrierung fällig {position}",
            [f"empfaenger{position}@kunde.example"],
            Status.QUEUED,
        )
        assert stored.smtp_configuration == configuration
    assert OutboxMessage.objects.count() == 3
    assert result.created == 3
    assert [message.pk for message in result.stored] == [
        result.messages[0].pk,
        result.messages[2].pk,
        result.messages[8].pk,
    ]
    # The refused attachment was never written.
    assert OutboxAttachment.objects.count() == 0
    assert not media_root.exists() or not any(path.is_file() for path in media_root.rglob("*"))


def test_a_batch_of_good_mails_has_no_errors(default_configuration):
    result = enqueue_many([mail(number) for number in range(3)])

    assert result.errors == {}
    assert result.created == 3
    assert [message.subject for message in result.messages] == [
        "Kalibrierung fällig 0",
        "Kalibrierung fällig 1",
        "Kalibrierung fällig 2",
    ]
    assert sorted(OutboxMessage.objects.values_list("pk", flat=True)) == sorted(
        message.pk for message in result.messages
    )


def test_an_empty_batch_stores_nothing(default_configuration, django_assert_num_queries):
    with django_assert_num_queries(0):
        result = enqueue_many([])

    assert result == EnqueueResult(messages=[], errors={}, created=0)


@pytest.mark.parametrize("chunk_size", [1, 500])
def test_all_or_nothing_refuses_the_batch_for_one_bad_mail(
    default_configuration, media_root, chunk_size, django_capture_on_commit_callbacks
):
    mails = [
        mail(0, attachments=[AttachmentSpec("bericht.pdf", b"%PDF-1.4")]),
        mail(1, to=["two@@example.org"]),
        mail(2),
        mail(3, subject="Hallo\nBcc: victim@example.org", reply_to=["reply"]),
    ]

    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(BatchValidationError) as refused,
    ):
        enqueue_many(mails, all_or_nothing=True, chunk_size=chunk_size)

    assert {position: error.message_dict for position, error in refused.value.by_index.items()} == {
        1: {"to": ["“two@@example.org” is not a valid e-mail address."]},
        3: {"reply_to": ["“reply” is not a valid e-mail address."], "subject": [LINE_BREAK_ERROR]},
    }
    # Numbered from 1, as a person counts the mails.
    assert refused.value.messages == [
        "Mail 2: “two@@example.org” is not a valid e-mail address.",
        f"Mail 4: “reply” is not a valid e-mail address. {LINE_BREAK_ERROR}",
    ]
    assert isinstance(refused.value, ValidationError)
    assert OutboxMessage.objects.count() == 0
    assert OutboxAttachment.objects.count() == 0
    assert not media_root.exists() or not any(path.is_file() for path in media_root.rglob("*"))
    assert callbacks == []


def test_all_or_nothing_stores_every_mail_of_a_good_batch(default_configuration):
    result = enqueue_many([mail(0), mail(1), mail(2)], all_or_nothing=True, chunk_size=2)

    assert (result.errors, result.created, OutboxMessage.objects.count()) == ({}, 3, 3)


def test_one_clock_reading_dates_the_whole_batch(default_configuration, settings):
    moment = datetime(2026, 12, 6, 23, 30, 5, tzinfo=UTC)

    with time_machine.travel(moment, tick=False):
        result = enqueue_many([mail(number) for number in range(3)], chunk_size=2)

    for message in OutboxMessage.objects.filter(pk__in=[m.pk for m in result.messages]):
        assert (message.created_at, message.next_attempt_at) == (moment, moment)
        assert parsed(message.raw_message)["Date"] == formatdate(
            moment.timestamp(), localtime=settings.EMAIL_USE_LOCALTIME
        )


def test_a_header_name_that_is_not_ascii_refuses_only_its_mail(default_configuration):
    result = enqueue_many([mail(0), mail(1, headers={"X-Grüße": "Hallo"}), mail(2)])

    assert list(result.errors) == [1]
    assert result.errors[1].message_dict == {"headers": ["“X-Grüße” is not a valid header name."]}
    assert OutboxMessage.objects.count() == 2


# --- idempotency keys -----------------------------------------------------------------------


def test_a_stored_key_returns_that_mail_unchanged(
    default_configuration, django_capture_on_commit_callbacks
):
    # Stored without enqueue_many(), so no nudge of its own is pending in this transaction.
    known = OutboxMessageFactory(
        idempotency_key="run-7:lab",
        subject="Kalibrierung fällig 0",
        smtp_configuration=default_configuration,
        status=Status.SENT,
        raw_message=b"Subject: Kalibrierung faellig 0\r\n\r\nText",
    )

    with django_capture_on_commit_callbacks() as callbacks:
        result = enqueue_many(
            [
                mail(1, subject="Anderer Betreff", idempotency_key="run-7:lab"),
                mail(2, idempotency_key="run-7:quality"),
            ]
        )

    assert result.errors == {}
    assert result.messages[0].pk == known.pk
    assert result.messages[0].subject == "Kalibrierung fällig 0"
    assert result.messages[1].pk != known.pk
    assert result.created == 1
    assert OutboxMessage.objects.count() == 2
    stored = OutboxMessage.objects.get(pk=known.pk)
    assert (stored.subject, stored.to, stored.status, bytes(stored.raw_message)) == (
        "Kalibrierung fällig 0",
        known.to,
        Status.SENT,
        b"Subject: Kalibrierung faellig 0\r\n\r\nText",
    )
    # One nudge, for the new mail.
    assert [callback.configuration_id for callback in callbacks] == [default_configuration.pk]


def test_a_batch_of_stored_keys_stores_and_nudges_nothing(
    default_configuration, django_capture_on_commit_callbacks
):
    # Stored without enqueue_many(), so no nudge of its own is pending in this transaction.
    first = OutboxMessageFactory(idempotency_key="a", smtp_configuration=default_configuration)
    second = OutboxMessageFactory(idempotency_key="b", smtp_configuration=default_configuration)

    with django_capture_on_commit_callbacks() as callbacks:
        again = enqueue_many([mail(1, idempotency_key="b"), mail(0, idempotency_key="a")])

    assert [m.pk for m in again.messages] == [second.pk, first.pk]
    assert (again.created, OutboxMessage.objects.count(), callbacks) == (0, 2, [])


def test_the_same_key_twice_in_one_call_gives_both_positions_one_mail(default_configuration):
    result = enqueue_many(
        [
            mail(0, idempotency_key="dup"),
            mail(1, idempotency_key="other"),
            mail(2, subject="Zweiter Versuch", idempotency_key="dup"),
        ]
    )

    assert result.errors == {}
    assert result.messages[2].pk == result.messages[0].pk
    assert result.messages[2].subject == "Kalibrierung fällig 0"
    assert result.messages[1].pk != result.messages[0].pk
    assert result.created == 2
    assert sorted(OutboxMessage.objects.values_list("idempotency_key", flat=True)) == [
        "dup",
        "other",
    ]


@pytest.mark.parametrize("all_or_nothing", [False, True], ids=["by-chunk", "all-or-nothing"])
def test_keys_repeating_across_chunks_are_stored_once(default_configuration, all_or_nothing):
    keys = ["a", "b", "a", "c", "b", "a", "d"]

    result = enqueue_many(
        [mail(position, idempotency_key=key) for position, key in enumerate(keys)],
        chunk_size=2,
        all_or_nothing=all_or_nothing,
    )

    assert result.errors == {}
    assert result.created == 4
    stored = dict(OutboxMessage.objects.values_list("idempotency_key", "pk"))
    assert sorted(stored) == ["a", "b", "c", "d"]
    assert [message.pk for message in result.messages] == [stored[key] for key in keys]
    # The first mail with a key is the one stored.
    assert dict(OutboxMessage.objects.values_list("idempotency_key", "subject")) == {
        "a": "Kalibrierung fällig 0",
        "b": "Kalibrierung fällig 1",
        "c": "Kalibrierung fällig 3",
        "d": "Kalibrierung fällig 6",
    }


def test_a_key_stored_by_an_earlier_chunk_of_a_failed_batch_is_kept(default_configuration):
    """Outside all_or_nothing every chunk commits on its own: a bad mail in a later chunk
    refuses only itself."""
    result = enqueue_many(
        [mail(0, idempotency_key="a"), mail(1), mail(2, to=["kaputt"]), mail(3)], chunk_size=2
    )

    assert list(result.errors) == [2]
    assert result.created == 3
    assert OutboxMessage.objects.count() == 3


@pytest.mark.parametrize("chunk_size", [1, 500])
def test_after_a_refused_mail_the_next_mail_with_its_key_is_stored(
    default_configuration, chunk_size
):
    result = enqueue_many(
        [
            mail(0, to=["not-an-address"], idempotency_key="dup"),
            mail(1, idempotency_key="dup"),
            mail(2, subject="Dritter", idempotency_key="dup"),
        ],
        chunk_size=chunk_size,
    )

    assert list(result.errors) == [0]
    assert result.messages[0] is None
    stored = OutboxMessage.objects.get(idempotency_key="dup")
    assert stored.subject == "Kalibrierung fällig 1"
    assert [message.pk for message in result.messages[1:]] == [stored.pk, stored.pk]
    assert result.created == 1
    # Every position is stored or reported, never neither.
    for position, message in enumerate(result.messages):
        assert (message is not None) != (position in result.errors), position


# --- concurrent callers (PostgreSQL) --------------------------------------------------------


@requires_postgresql
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_callers_with_overlapping_keys_store_each_key_once(
    default_configuration, media_root, published
):
    for round_number in range(3):
        keys = [f"r{round_number}:k{number:02d}" for number in range(60)]
        # Overlapping halves, in opposite order: both callers reach the shared keys.
        batches = [keys[:40], list(reversed(keys[20:]))]
        mails = [
            [
                mail(
                    number,
                    idempotency_key=key,
                    attachments=[AttachmentSpec(f"{key.replace(':', '-')}.txt", key.encode())],
                )
                for number, key in enumerate(batch)
            ]
            for batch in batches
        ]
        barrier = threading.Barrier(2)
        results: list[EnqueueResult | None] = [None, None]
        errors: list[BaseException] = []

        def call(index: int, barrier=barrier, results=results, errors=errors, mails=mails):
            try:
                barrier.wait(timeout=30)
                results[index] = enqueue_many(mails[index], chunk_size=7)
            except BaseException as error:  # reported in the main thread
                errors.append(error)
                barrier.abort()
            finally:
                connections.close_all()

        threads = [threading.Thread(target=call, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        assert errors == []
        rows = list(
            OutboxMessage.objects.filter(
                idempotency_key__startswith=f"r{round_number}:"
            ).values_list("idempotency_key", "pk")
        )
        assert Counter(key for key, _pk in rows) == Counter(keys)
        stored = dict(rows)
        for batch, result in zip(batches, results, strict=True):
            assert result is not None
            assert result.errors == {}
            assert [message.idempotency_key for message in result.messages] == batch
            assert [message.pk for message in result.messages] == [stored[key] for key in batch]
        # Each key was created by exactly one of the callers.
        assert results[0].created + results[1].created == len(keys)
        # Only the stored mails have attachments: one each, their own.
        attachments = OutboxAttachment.objects.filter(message__pk__in=stored.values())
        assert sorted(attachments.values_list("message__idempotency_key", flat=True)) == sorted(
            keys
        )
        for attachment in attachments.select_related("message"):
            assert read(attachment) == attachment.message.idempotency_key.encode()
    assert OutboxAttachment.objects.count() == OutboxMessage.objects.count() == 180
    # No file written for a mail the other caller stored first.
    assert len([path for path in media_root.rglob("*") if path.is_file()]) == 180


@requires_postgresql
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_key_committed_between_lookup_and_insert_returns_the_other_callers_mail(
    default_configuration, media_root, published
):
    """The other caller's row is not yet committed when this caller looks its key up, so
    this caller's INSERT meets it: it waits for that commit and skips the row."""
    result: list[EnqueueResult] = []
    errors: list[BaseException] = []

    def call():
        try:
            result.append(
                enqueue_many(
                    [
                        mail(
                            0,
                            idempotency_key="run-9:lab",
                            attachments=[AttachmentSpec("skipped.txt", b"never stored")],
                        ),
                        mail(1, idempotency_key="run-9:quality"),
                    ]
                )
            )
        except BaseException as error:  # reported in the main thread
            errors.append(error)
        finally:
            connections.close_all()

    caller = threading.Thread(target=call)
    with transaction.atomic():
        other = OutboxMessageFactory(
            idempotency_key="run-9:lab",
            subject="Vom anderen Aufrufer",
            smtp_configuration=default_configuration,
        )
        caller.start()
        deadline = time.monotonic() + 30
        with connection.cursor() as cursor:
            while True:
                # Backends waiting for this one: the caller, once its INSERT meets the key.
                # (pg_locks, not pg_stat_activity: that one is a snapshot per transaction.)
                cursor.execute(
                    "SELECT count(*) FROM pg_locks"
                    " WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
                )
                if cursor.fetchone()[0]:
                    break  # the caller's INSERT waits for this transaction
                assert caller.is_alive(), "the caller finished without waiting for the key"
                assert time.monotonic() < deadline, "the caller's INSERT never waited"
                time.sleep(0.02)
    caller.join(timeout=30)

    assert errors == []
    [outcome] = result
    assert outcome.errors == {}
    assert outcome.messages[0].pk == other.pk
    assert outcome.messages[0].subject == "Vom anderen Aufrufer"
    assert outcome.messages[1].idempotency_key == "run-9:quality"
    assert outcome.created == 1
    assert OutboxMessage.objects.count() == 2
    # The skipped mail's attachment was not stored; the nudge is for the new mail only.
    assert OutboxAttachment.objects.count() == 0
    assert not media_root.exists() or not any(path.is_file() for path in media_root.rglob("*"))
    assert [configuration for configuration, _stored in published] == [default_configuration.pk]


@requires_postgresql
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_deadlock_over_two_keys_is_tried_again_not_raised(
    default_configuration, media_root, published
):
    """This caller inserts "dl:x", then waits for "dl:y", which another transaction holds;
    that one then inserts "dl:x" too. PostgreSQL aborts the caller (it waited first, so
    its deadlock check runs first); its INSERT runs again and finds both keys stored."""
    result: list[EnqueueResult] = []
    errors: list[BaseException] = []

    def call():
        try:
            result.append(
                enqueue_many([mail(0, idempotency_key="dl:x"), mail(1, idempotency_key="dl:y")])
            )
        except BaseException as error:  # reported in the main thread
            errors.append(error)
        finally:
            connections.close_all()

    caller = threading.Thread(target=call)
    with transaction.atomic():
        with connection.cursor() as cursor:
            # The caller, not this transaction, is to be the deadlock's victim.
            cursor.execute("SET LOCAL deadlock_timeout = '30s'")
        other_y = OutboxMessageFactory(
            idempotency_key="dl:y", smtp_configuration=default_configuration
        )
        caller.start()
        deadline = time.monotonic() + 30
        with connection.cursor() as cursor:
            while True:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks"
                    " WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
                )
                if cursor.fetchone()[0]:
                    break  # the caller holds "dl:x" and waits for "dl:y"
                assert caller.is_alive(), "the caller finished without waiting for the key"
                assert time.monotonic() < deadline, "the caller's INSERT never waited"
                time.sleep(0.02)
        # Waits for the caller's "dl:x": a deadlock, until the caller is aborted.
        other_x = OutboxMessageFactory(
            idempotency_key="dl:x", smtp_configuration=default_configuration
        )
    caller.join(timeout=30)

    assert errors == []
    [outcome] = result
    assert outcome.errors == {}
    assert [message.pk for message in outcome.messages] == [other_x.pk, other_y.pk]
    assert outcome.created == 0
    assert OutboxMessage.objects.count() == 2
    assert published == []


def test_over_long_and_unknown_values_refuse_their_mail_not_the_chunk(default_configuration):
    mails = [
        mail(0, source_label="A" * 201),
        mail(1, address_type="somewhere"),
        mail(2, idempotency_key="k" * 201),
        mail(3, source_label="A" * 200),
    ]

    result = enqueue_many(mails)

    assert sorted(result.errors) == [0, 1, 2]
    assert result.errors[0].message_dict == {
        "source_label": ["At most 200 characters are allowed here (201 given)."]
    }
    assert result.errors[1].message_dict == {
        "address_type": ["“somewhere” is not a known value here."]
    }
    assert list(result.errors[2].message_dict) == ["idempotency_key"]
    assert result.messages[3].source_label == "A" * 200
    assert OutboxMessage.objects.count() == 1


def test_json_columns_are_stored_as_given(default_configuration):
    parameters = {"Vorlage": "Prüfmittel „fällig“", "rows": 3, "nested": {"a": [1, None, True]}}
    headers = {"X-Kunde": 'Müller "&" Söhne \\ {1,2}'}
    mails = [
        mail(0, parameters=parameters, headers=headers, cc=["b@example.com"]),
        mail(1),
    ]

    result = enqueue_many(mails, chunk_size=1)

    first, second = OutboxMessage.objects.order_by("pk")
    assert (first.parameters, first.headers, first.cc) == (parameters, headers, ["b@example.com"])
    assert (second.parameters, second.headers, second.cc, second.bcc) == ({}, {}, [], [])
    assert result.created == 2


@requires_postgresql
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_database_error_in_a_later_chunk_reaches_the_caller_and_earlier_chunks_stay(
    default_configuration, published
):
    gone = SmtpConfigurationFactory(from_email="gone@example.com")
    SmtpConfiguration.objects.filter(pk=gone.pk).delete()
    # Chunks of two; the third chunk's mail names a configuration deleted meanwhile,
    # which only the database notices (the foreign key, at that chunk's commit).
    mails = [mail(number) for number in range(4)] + [mail(4, smtp_configuration=gone)]

    with pytest.raises(IntegrityError):
        enqueue_many(mails, chunk_size=2)

    assert sorted(OutboxMessage.objects.values_list("subject", flat=True)) == [
        f"Kalibrierung fällig {number}" for number in range(4)
    ]


# --- delivery nudges ------------------------------------------------------------------------


def test_in_a_transaction_one_nudge_per_configuration_however_many_chunks(
    default_configuration, published, django_capture_on_commit_callbacks
):
    other = SmtpConfigurationFactory(from_email="other@example.com")

    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        enqueue_many(
            [
                mail(number, smtp_configuration=other if number % 3 == 0 else None)
                for number in range(9)
            ],
            chunk_size=2,
        )
        # A second batch in the same transaction adds no nudge either.
        enqueue_many([mail(10), mail(11, smtp_configuration=other)], chunk_size=1)
        # Nothing is published before the commit.
        assert published == []

    assert OutboxMessage.objects.count() == 11
    assert len(callbacks) == 2
    assert sorted(configuration for configuration, _stored in published) == sorted(
        [default_configuration.pk, other.pk]
    )
    # Published once every mail was stored.
    assert {stored for _configuration, stored in published} == {11}


def test_all_or_nothing_nudges_once_per_configuration(
    default_configuration, published, django_capture_on_commit_callbacks
):
    other = SmtpConfigurationFactory(from_email="other@example.com")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        enqueue_many(
            [mail(number, smtp_configuration=other if number % 2 else None) for number in range(6)],
            chunk_size=2,
            all_or_nothing=True,
        )

    assert len(callbacks) == 2
    assert Counter(configuration for configuration, _stored in published) == Counter(
        {default_configuration.pk: 1, other.pk: 1}
    )


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_every_chunk_commits_and_nudges_on_its_own(
    default_configuration, published
):
    other = SmtpConfigurationFactory(from_email="other@example.com")
    # Chunks of two: (default, other), (default, other), (default).
    mails = [mail(number, smtp_configuration=other if number % 2 else None) for number in range(5)]

    result = enqueue_many(mails, chunk_size=2)

    assert result.created == 5
    by_configuration: dict[int, list[int]] = {}
    for configuration, stored in published:
        by_configuration.setdefault(configuration, []).append(stored)
    # Each chunk's nudge goes out after its commit, while the next chunk is still to come.
    assert by_configuration == {default_configuration.pk: [2, 4, 5], other.pk: [2, 4]}


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_a_refused_chunk_nudges_nothing(default_configuration, published):
    mails = [mail(0), mail(1), mail(2, to=["kaputt"]), mail(3, subject=" ")]

    result = enqueue_many(mails, chunk_size=2)

    assert sorted(result.errors) == [2, 3]
    assert published == [(default_configuration.pk, 2)]


def test_scheduled_mails_do_not_nudge(
    default_configuration, published, django_capture_on_commit_callbacks
):
    other = SmtpConfigurationFactory(from_email="other@example.com")
    later = timezone.now() + timedelta(days=2)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = enqueue_many(
            [
                mail(0, scheduled_at=later),
                mail(1, scheduled_at=later, smtp_configuration=other),
                mail(2, smtp_configuration=other),
                # Planned for a moment that has passed: queued, and nudged.
                mail(
                    3, scheduled_at=timezone.now() - timedelta(minutes=1), smtp_configuration=other
                ),
                mail(4, scheduled_at=later),
            ]
        )

    assert [message.status for message in result.messages] == [
        Status.SCHEDULED,
        Status.SCHEDULED,
        Status.QUEUED,
        Status.QUEUED,
        Status.SCHEDULED,
    ]
    assert result.messages[0].next_attempt_at == later
    # The default configuration has only scheduled mail: the sweeper queues it in time.
    assert len(callbacks) == 1
    assert [configuration for configuration, _stored in published] == [other.pk]


def test_a_batch_of_scheduled_mails_nudges_nothing(
    default_configuration, django_capture_on_commit_callbacks
):
    later = timezone.now() + timedelta(hours=3)

    with django_capture_on_commit_callbacks() as callbacks:
        result = enqueue_many([mail(number, scheduled_at=later) for number in range(3)])

    assert result.created == 3
    assert callbacks == []


# --- attachments ----------------------------------------------------------------------------


def test_file_attachments_are_stored_and_linked_to_their_mail(default_configuration, media_root):
    result = enqueue_many(
        [
            mail(
                0,
                attachments=[
                    AttachmentSpec("bericht.pdf", b"%PDF-1.4 eins", exported=True),
                    AttachmentSpec("notiz.txt", "Grüße".encode(), content_type="text/plain"),
                ],
            ),
            mail(1),
            mail(2, attachments=[AttachmentSpec("zwei.pdf", b"%PDF-1.4 zwei")]),
        ],
        chunk_size=2,
    )

    first, plain, third = (OutboxMessage.objects.get(pk=m.pk) for m in result.messages)
    assert [
        (a.filename, a.content_type, a.size, a.exported, read(a))
        for a in first.attachments.order_by("id")
    ] == [
        ("bericht.pdf", "application/pdf", 13, True, b"%PDF-1.4 eins"),
        ("notiz.txt", "text/plain", 7, False, "Grüße".encode()),
    ]
    assert [(a.filename, read(a)) for a in third.attachments.all()] == [
        ("zwei.pdf", b"%PDF-1.4 zwei")
    ]
    assert not plain.attachments.exists()
    assert (first.attachment_count, first.exported_attachments, third.attachment_count) == (2, 1, 1)
    # Files stay in storage and are attached when the mail is sent; plain mails are built now.
    assert bytes(first.raw_message) == b""
    assert bytes(third.raw_message) == b""
    assert parsed(plain.raw_message)["Subject"] == "Kalibrierung fällig 1"
    assert parsed(plain.raw_message)["Message-ID"] == plain.message_id
    assert all(
        media_root in (media_root / a.file.name).parents for a in OutboxAttachment.objects.all()
    )


def test_link_attachments_put_signed_links_in_both_bodies_and_the_raw_message(
    default_configuration, media_root
):
    result = enqueue_many(
        [
            mail(
                0,
                body_text="Guten Tag.",
                body_html="<p>Guten Tag.</p>",
                attachments=[
                    AttachmentSpec("bericht.pdf", b"%PDF-1.4"),
                    AttachmentSpec("liste.csv", b"a;b\n1;2\n"),
                ],
                attachment_type=AttachmentType.LINK,
            ),
            mail(1, attachment_type=AttachmentType.LINK),
        ]
    )

    stored = OutboxMessage.objects.get(pk=result.messages[0].pk)
    attachments = list(stored.attachments.order_by("id"))
    assert [(a.filename, read(a)) for a in attachments] == [
        ("bericht.pdf", b"%PDF-1.4"),
        ("liste.csv", b"a;b\n1;2\n"),
    ]
    tokens = re.findall(r"/outbox/download/([^/\s\"]+)/", stored.body_text)
    assert [attachment_uuid_from_token(token) for token in tokens] == [
        str(a.uuid) for a in attachments
    ]
    urls = [f"http://127.0.0.1:8000/outbox/download/{token}/" for token in tokens]
    assert stored.body_text == (
        "Guten Tag.\n\nDownloads (valid for 30 days):\n"
        f"- bericht.pdf: {urls[0]}\n- liste.csv: {urls[1]}\n"
    )
    assert stored.body_html == (
        "<p>Guten Tag.</p><p>Downloads (valid for 30 days):</p><ul>"
        f'<li><a href="{urls[0]}">bericht.pdf</a></li>'
        f'<li><a href="{urls[1]}">liste.csv</a></li></ul>'
    )
    # The links go out as they are stored: in both parts of the prebuilt message.
    sent = texts(stored.raw_message)
    assert sent["text/plain"] == stored.body_text.replace("\n", "\r\n")
    assert sent["text/html"] == stored.body_html
    assert not any(part.get_filename() for part in parsed(stored.raw_message).walk())
    # Without files there is nothing to link.
    without = OutboxMessage.objects.get(pk=result.messages[1].pk)
    assert "Downloads" not in without.body_text
    assert "Downloads" not in texts(without.raw_message)["text/plain"]


# --- enqueue(): one mail of enqueue_many() --------------------------------------------------


def test_enqueue_raises_the_field_errors_of_its_mail(default_configuration):
    with pytest.raises(ValidationError) as refused:
        enqueue(to=["lab@example.org", "kaputt"], subject=" ", headers={"X-A": "1\n2"})

    assert not isinstance(refused.value, BatchValidationError)
    assert refused.value.message_dict == {
        "to": ["“kaputt” is not a valid e-mail address."],
        "subject": ["Enter a subject."],
        "headers": [LINE_BREAK_ERROR],
    }
    assert OutboxMessage.objects.count() == 0


def test_enqueue_returns_the_stored_mail_for_a_known_key(default_configuration):
    first = enqueue(to=["lab@example.org"], subject="Einmal", idempotency_key="k")

    second = enqueue(to=["other@example.org"], subject="Zweimal", idempotency_key="k")

    assert second.pk == first.pk
    assert (second.subject, second.to) == ("Einmal", ["lab@example.org"])
    assert OutboxMessage.objects.count() == 1


def test_enqueue_of_a_known_key_nudges_nothing(
    default_configuration, django_capture_on_commit_callbacks
):
    known = OutboxMessageFactory(idempotency_key="k", smtp_configuration=default_configuration)

    with django_capture_on_commit_callbacks() as callbacks:
        message = enqueue(to=["other@example.org"], subject="Zweimal", idempotency_key="k")

    assert message.pk == known.pk
    assert callbacks == []


def test_enqueue_stores_and_nudges_one_mail(
    default_configuration, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        message = enqueue(to=["lab@example.org"], subject="Hallo", body_text="Text")

    stored = OutboxMessage.objects.get()
    assert stored.pk == message.pk
    assert texts(stored.raw_message) == {"text/plain": "Text"}
    assert len(callbacks) == 1


def test_named_addresses_keep_their_display_name_in_the_header(default_configuration):
    result = enqueue_many(
        [
            mail(
                0,
                to=["Laura Peters <laura@kunde.example>", "Jörg Müller <joerg@kunde.example>"],
                cc=['"Muster, Max" <max@kunde.example>'],
            )
        ]
    )

    [message] = result.stored
    assert message.to == [
        "Laura Peters <laura@kunde.example>",
        '"Jörg Müller" <joerg@kunde.example>',
    ]
    headers = parsed(message.raw_message)
    assert [(a.display_name, a.addr_spec) for a in headers["To"].addresses] == [
        ("Laura Peters", "laura@kunde.example"),
        ("Jörg Müller", "joerg@kunde.example"),
    ]
    assert headers["Cc"].addresses[0].display_name == "Muster, Max"


def test_a_named_address_with_a_bad_address_is_refused(default_configuration):
    result = enqueue_many([mail(0, to=["Laura Peters <laura@>"])])

    assert result.errors[0].message_dict == {
        "to": ["“Laura Peters <laura@>” is not a valid e-mail address."]
    }
