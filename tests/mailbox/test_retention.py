"""Retention: content after CALMAIL_OUTBOX_RETENTION_DAYS, records after
CALMAIL_RECORD_RETENTION_YEARS; a purged mail says so and cannot be resent."""

import datetime

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from mailbox import retention
from mailbox.models import DeliveryAttempt, OutboxAttachment, OutboxMessage, Status
from mailbox.services import message_resend
from mailbox.tasks import purge
from mailbox.transitions import InvalidTransition, resend_refusal
from tests.factories import DeliveryAttemptFactory, OutboxAttachmentFactory, OutboxMessageFactory

NOW = datetime.datetime(2026, 6, 1, 3, 0, tzinfo=datetime.UTC)
OLD = NOW - datetime.timedelta(days=31)
RECENT = NOW - datetime.timedelta(days=29)


@pytest.fixture
def short_retention(settings):
    settings.CALMAIL_OUTBOX_RETENTION_DAYS = 30
    settings.CALMAIL_RECORD_RETENTION_YEARS = 1


def created(message, when):
    OutboxMessage.objects.filter(pk=message.pk).update(created_at=when)
    return message


def bodies(message) -> tuple:
    message.refresh_from_db()
    return (message.body_text, message.body_html, bytes(message.raw_message))


@pytest.mark.django_db
def test_purge_contents_empties_old_finished_mail_and_keeps_the_record(
    short_retention, media_root, django_capture_on_commit_callbacks
):
    attachment = OutboxAttachmentFactory(
        message__status=Status.SENT,
        message__sent_at=OLD,
        message__body_html="<p>Hallo</p>",
        message__raw_message=b"Subject: x\r\n\r\nHallo",
        message__attempt_count=1,
        message__error_message="",
    )
    sent = created(attachment.message, OLD)
    DeliveryAttemptFactory(message=sent, started_at=OLD)
    failed = created(OutboxMessageFactory(status=Status.FAILED, error_message="550"), OLD)
    cancelled = created(OutboxMessageFactory(status=Status.CANCELLED), OLD)
    queued = created(OutboxMessageFactory(status=Status.QUEUED), OLD)
    resent_recently = created(OutboxMessageFactory(status=Status.SENT, sent_at=RECENT), OLD)
    young = created(OutboxMessageFactory(status=Status.SENT, sent_at=RECENT), RECENT)
    path = media_root / attachment.file.name

    with django_capture_on_commit_callbacks(execute=True):
        file_there_before_commit = path.exists()
        purged = retention.purge_contents(now=NOW, batch_size=2)

    assert purged == 3
    assert [bodies(m) for m in (sent, failed, cancelled)] == [("", "", b"")] * 3
    assert {
        m.pk: m.content_purged_at
        for m in OutboxMessage.objects.filter(content_purged_at__isnull=False)
    } == {sent.pk: NOW, failed.pk: NOW, cancelled.pk: NOW}
    assert [bodies(m)[0] for m in (queued, resent_recently, young)] == [
        "Guten Tag,\nanbei der Kalibrierschein."
    ] * 3
    # The record: every row stays, with its attempts and the attachment's name and size.
    sent.refresh_from_db()
    assert (sent.subject, sent.recipient, sent.status, sent.sent_at, sent.message_id) == (
        attachment.message.subject,
        attachment.message.recipient,
        Status.SENT,
        OLD,
        attachment.message.message_id,
    )
    assert OutboxMessage.objects.count() == 6
    assert DeliveryAttempt.objects.filter(message=sent).count() == 1
    kept = OutboxAttachment.objects.get()
    assert (kept.filename, kept.size, kept.file.name) == (attachment.filename, attachment.size, "")
    assert (file_there_before_commit, path.exists()) == (True, False)


@pytest.mark.django_db
def test_purge_contents_does_not_touch_mail_purged_before(short_retention):
    message = created(OutboxMessageFactory(status=Status.SENT, sent_at=OLD), OLD)
    retention.purge_contents(now=NOW)
    later = NOW + datetime.timedelta(days=1)

    purged_again = retention.purge_contents(now=later)

    message.refresh_from_db()
    assert (purged_again, message.content_purged_at) == (0, NOW)


@pytest.mark.django_db
def test_purge_records_deletes_only_after_the_retention_years(
    short_retention, media_root, django_capture_on_commit_callbacks
):
    year_and_a_day = NOW - datetime.timedelta(days=367)
    ancient = created(
        OutboxAttachmentFactory(
            message__status=Status.SENT, message__sent_at=year_and_a_day
        ).message,
        year_and_a_day,
    )
    DeliveryAttemptFactory(message=ancient, started_at=year_and_a_day)
    month_old = created(OutboxMessageFactory(status=Status.SENT, sent_at=OLD), OLD)
    ancient_but_waiting = created(OutboxMessageFactory(status=Status.DEFERRED), year_and_a_day)

    with django_capture_on_commit_callbacks(execute=True):
        result = retention.purge_outbox(now=NOW, batch_size=1)

    assert result == retention.PurgeResult(contents=2, records=1)
    assert sorted(OutboxMessage.objects.values_list("pk", flat=True)) == sorted(
        [month_old.pk, ancient_but_waiting.pk]
    )
    assert (DeliveryAttempt.objects.count(), OutboxAttachment.objects.count()) == (0, 0)
    assert list((media_root / "outbox").rglob("*.pdf")) == []


@pytest.mark.django_db
def test_purge_walks_every_batch(short_retention):
    for _ in range(5):
        created(OutboxMessageFactory(status=Status.SENT, sent_at=OLD), OLD)

    purged = retention.purge_contents(now=NOW, batch_size=2)

    assert (purged, OutboxMessage.objects.filter(content_purged_at=NOW).count()) == (5, 5)


@pytest.mark.django_db
def test_purge_task_reports_contents_and_records(
    short_retention, django_capture_on_commit_callbacks
):
    now = timezone.now()
    created(
        OutboxMessageFactory(status=Status.SENT, sent_at=now), now - datetime.timedelta(days=40)
    )
    created(
        OutboxMessageFactory(status=Status.SENT, sent_at=now - datetime.timedelta(days=40)),
        now - datetime.timedelta(days=40),
    )
    created(
        OutboxMessageFactory(status=Status.SENT, sent_at=now - datetime.timedelta(days=400)),
        now - datetime.timedelta(days=400),
    )

    with django_capture_on_commit_callbacks(execute=True):
        result = purge()

    assert (result, OutboxMessage.objects.count()) == ({"contents": 2, "records": 1}, 2)


def test_record_retention_defaults_to_ten_years():
    from calmail import settings as project_settings

    assert (
        project_settings.CALMAIL_RECORD_RETENTION_YEARS,
        project_settings.CALMAIL_OUTBOX_RETENTION_DAYS,
    ) == (10, 180)


@pytest.fixture
def purged_mail(db, short_retention):
    message = OutboxAttachmentFactory(
        message__status=Status.FAILED, message__subject="Alter Kalibrierschein"
    ).message
    created(message, OLD)
    retention.purge_contents(now=NOW)
    message.refresh_from_db()
    return message


@pytest.mark.django_db
def test_resend_of_a_content_purged_mail_is_refused(purged_mail):
    refusal = resend_refusal(purged_mail)

    with pytest.raises(InvalidTransition):
        message_resend(message=purged_mail)

    purged_mail.refresh_from_db()
    assert refusal == (
        "The content of this mail was deleted after the retention period; it cannot be sent again."
    )
    assert purged_mail.status == Status.FAILED


@pytest.mark.django_db
def test_resend_page_of_a_content_purged_mail_explains_and_changes_nothing(
    client_for, english, admin, purged_mail
):
    url = reverse("mailbox:resend", args=[purged_mail.pk])

    response = client_for(admin).post(url)

    purged_mail.refresh_from_db()
    assert "it cannot be sent again" in response.content.decode()
    assert purged_mail.status == Status.FAILED


@pytest.mark.django_db
def test_detail_of_a_content_purged_mail_says_so_and_offers_no_download(
    client_for, english, admin, purged_mail, settings
):
    with time_machine.travel(NOW, tick=False):
        response = client_for(admin).get(reverse("mailbox:detail", args=[purged_mail.pk]))
        raw = client_for(admin).get(reverse("mailbox:raw", args=[purged_mail.pk]))

    html = response.content.decode()
    assert "Content deleted after 30 days" in html
    assert 'data-testid="raw-link"' not in html
    assert 'data-testid="file-deleted"' in html
    assert reverse("mailbox:resend", args=[purged_mail.pk]) not in html
    assert (raw.status_code, raw["Location"]) == (
        302,
        reverse("mailbox:detail", args=[purged_mail.pk]),
    )
