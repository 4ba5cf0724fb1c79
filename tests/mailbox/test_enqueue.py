import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from mailbox.links import attachment_uuid_from_token
from mailbox.models import (
    AddressType,
    AttachmentType,
    OutboxAttachment,
    OutboxMessage,
    Source,
    Status,
)
from mailbox.services import AttachmentSpec, enqueue
from smtpconfig.models import SmtpConfiguration
from tests.factories import SmtpConfigurationFactory

LINE_BREAK_ERROR = "Line breaks are not allowed here (they could inject mail headers)."


@pytest.fixture
def default_configuration(db) -> SmtpConfiguration:
    return SmtpConfigurationFactory(is_default=True, from_email="labor@example.com")


def read(attachment: OutboxAttachment) -> bytes:
    with attachment.file.storage.open(attachment.file.name, "rb") as handle:
        return handle.read()


def errors_of(**options) -> dict[str, list[str]]:
    options.setdefault("to", ["lab@example.org"])
    options.setdefault("subject", "Kalibrierung fällig")
    with pytest.raises(ValidationError) as refused:
        enqueue(**options)
    assert OutboxMessage.objects.count() == 0
    return refused.value.message_dict


def test_enqueue_stores_a_queued_mail(
    default_configuration, admin, django_capture_on_commit_callbacks
):
    before = timezone.now()

    with django_capture_on_commit_callbacks() as callbacks:
        message = enqueue(
            to=["lab@example.org", " quality@example.org "],
            cc=["cc@example.org"],
            bcc=["archive@example.org"],
            reply_to=["office@example.org"],
            subject="Kalibrierung fällig",
            body_text="Text",
            body_html="<p>HTML</p>",
            from_name="Kalibrierlabor",
            headers={"X-Calmail-Action": "7"},
            source=Source.COMPOSE,
            source_label="Monatliche Erinnerung",
            address_type=AddressType.CUSTOMER,
            recipient_owner="Muster GmbH",
            parameters={"filter": "due"},
            created_by=admin,
        )

    stored = OutboxMessage.objects.get()
    assert stored.pk == message.pk
    assert stored.status == Status.QUEUED
    assert before <= stored.next_attempt_at <= timezone.now()
    assert stored.smtp_configuration == default_configuration
    # The configuration's sender when the caller names none.
    assert (stored.from_email, stored.from_name) == ("labor@example.com", "Kalibrierlabor")
    assert stored.to == ["lab@example.org", "quality@example.org"]
    assert (stored.cc, stored.bcc, stored.reply_to) == (
        ["cc@example.org"],
        ["archive@example.org"],
        ["office@example.org"],
    )
    assert stored.recipient == "lab@example.org, quality@example.org"
    assert (stored.source, stored.source_label, stored.address_type, stored.recipient_owner) == (
        Source.COMPOSE,
        "Monatliche Erinnerung",
        AddressType.CUSTOMER,
        "Muster GmbH",
    )
    assert stored.parameters == {"filter": "due"}
    assert stored.headers == {"X-Calmail-Action": "7"}
    assert stored.created_by == admin
    assert stored.attempt_count == 0
    assert re.fullmatch(r"<[^<>@\s]+@example\.com>", stored.message_id)
    # Delivery is nudged once the transaction commits, not before.
    assert len(callbacks) == 1


def test_enqueue_names_each_bad_address(default_configuration):
    errors = errors_of(
        to=["lab@example.org", "not-an-address", "two@@example.org"],
        cc=["cc at example.org"],
        bcc=["bcc@"],
        reply_to=["reply"],
    )

    assert errors == {
        "to": [
            "“not-an-address” is not a valid e-mail address.",
            "“two@@example.org” is not a valid e-mail address.",
        ],
        "cc": ["“cc at example.org” is not a valid e-mail address."],
        "bcc": ["“bcc@” is not a valid e-mail address."],
        "reply_to": ["“reply” is not a valid e-mail address."],
    }


def test_enqueue_refuses_a_bad_sender(default_configuration):
    errors = errors_of(from_email="labor(at)example.com")

    assert errors == {"from_email": ["“labor(at)example.com” is not a valid e-mail address."]}


def test_enqueue_refuses_line_break_in_address(default_configuration):
    errors = errors_of(to=["lab@example.org\r\nBcc: victim@example.org"])

    assert errors == {"to": ["“lab@example.org⏎Bcc: victim@example.org” contains a line break."]}


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"subject": "Hallo\r\nBcc: victim@example.org"}, "subject"),
        ({"subject": "Hallo\nBcc: victim@example.org"}, "subject"),
        ({"from_name": "Labor\r\nBcc: victim@example.org"}, "from_name"),
        ({"headers": {"X-Note": "a\r\nBcc: victim@example.org"}}, "headers"),
        ({"headers": {"X-Note\nBcc": "victim@example.org"}}, "headers"),
    ],
)
def test_enqueue_refuses_header_injection(default_configuration, options, field):
    errors = errors_of(**options)

    assert errors == {field: [LINE_BREAK_ERROR]}


def test_enqueue_needs_a_subject(default_configuration):
    assert errors_of(subject="  ") == {"subject": ["Enter a subject."]}


def test_enqueue_needs_a_recipient(default_configuration):
    assert errors_of(to=[" "]) == {"to": ["Enter at least one recipient."]}


def test_enqueue_bcc_alone_is_a_recipient(default_configuration):
    message = enqueue(to=[], bcc=["archive@example.org"], subject="Nur Bcc")

    assert message.recipient == "archive@example.org"


def test_enqueue_refuses_too_large_attachment(default_configuration, settings):
    settings.CALMAIL_ATTACHMENT_MAX_BYTES = 1_000_000

    errors = errors_of(attachments=[AttachmentSpec("gross.bin", b"x" * 1_500_000)])

    assert errors == {"attachments": ["gross.bin is 1.5 MB; at most 1 MB are allowed."]}
    assert OutboxAttachment.objects.count() == 0


def test_enqueue_refuses_file_name_with_path(default_configuration):
    errors = errors_of(attachments=[AttachmentSpec("../etc/passwd", b"x")])

    assert errors == {"attachments": ["“../etc/passwd” is not a valid file name."]}


def test_enqueue_without_any_configuration(db):
    assert errors_of() == {
        "smtp_configuration": ["There is no SMTP configuration to send through."]
    }


def test_enqueue_uses_the_given_configuration(default_configuration):
    other = SmtpConfigurationFactory(from_email="other@example.com")

    message = enqueue(to=["lab@example.org"], subject="Hallo", smtp_configuration=other)

    assert (message.smtp_configuration, message.from_email) == (other, "other@example.com")


def test_enqueue_same_idempotency_key_gives_one_mail(
    default_configuration, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        first = enqueue(
            to=["lab@example.org"], subject="Einmal", idempotency_key="action-7:2026-12-01:lab"
        )
        second = enqueue(
            to=["lab@example.org"], subject="Einmal", idempotency_key="action-7:2026-12-01:lab"
        )

    assert second.pk == first.pk
    assert OutboxMessage.objects.count() == 1
    assert len(callbacks) == 1


def test_enqueue_different_idempotency_keys_give_two_mails(default_configuration):
    enqueue(to=["lab@example.org"], subject="A", idempotency_key="a")
    enqueue(to=["lab@example.org"], subject="B", idempotency_key="b")

    assert OutboxMessage.objects.count() == 2


def test_enqueue_scheduled_in_the_future(default_configuration, django_capture_on_commit_callbacks):
    planned = timezone.now() + timedelta(days=2)

    with django_capture_on_commit_callbacks() as callbacks:
        message = enqueue(to=["lab@example.org"], subject="Später", scheduled_at=planned)

    stored = OutboxMessage.objects.get(pk=message.pk)
    assert (stored.status, stored.scheduled_at, stored.next_attempt_at) == (
        Status.SCHEDULED,
        planned,
        planned,
    )
    # The sweeper queues it when its time comes; nothing is dispatched now.
    assert callbacks == []


def test_enqueue_scheduled_in_the_past_is_queued(default_configuration):
    message = enqueue(
        to=["lab@example.org"],
        subject="Verspätet",
        scheduled_at=timezone.now() - timedelta(minutes=1),
    )

    assert OutboxMessage.objects.get(pk=message.pk).status == Status.QUEUED


def test_enqueue_stores_file_attachments(default_configuration, media_root):
    message = enqueue(
        to=["lab@example.org"],
        subject="Berichte",
        attachments=[
            AttachmentSpec("bericht.pdf", b"%PDF-1.4", exported=True),
            AttachmentSpec("notiz.txt", "Grüße".encode(), content_type="text/plain"),
        ],
    )

    stored = OutboxMessage.objects.get(pk=message.pk)
    assert (stored.attachment_type, stored.attachment_count, stored.exported_attachments) == (
        AttachmentType.FILE,
        2,
        1,
    )
    attachments = list(stored.attachments.all())
    assert [(a.filename, a.content_type, a.size, a.exported) for a in attachments] == [
        ("bericht.pdf", "application/pdf", 8, True),
        ("notiz.txt", "text/plain", 7, False),
    ]
    assert [read(a) for a in attachments] == [b"%PDF-1.4", "Grüße".encode()]
    # Stored under the media root, in a folder of its own.
    assert all(media_root in (media_root / a.file.name).parents for a in attachments)
    assert len({a.file.name.rsplit("/", 1)[0] for a in attachments}) == 2
    assert stored.body_text == ""


def test_enqueue_link_attachments_add_signed_urls(default_configuration):
    message = enqueue(
        to=["lab@example.org"],
        subject="Bericht",
        body_text="Guten Tag.",
        body_html="<p>Guten Tag.</p>",
        attachments=[AttachmentSpec("bericht.pdf", b"%PDF-1.4")],
        attachment_type=AttachmentType.LINK,
    )

    stored = OutboxMessage.objects.get(pk=message.pk)
    attachment = stored.attachments.get()
    [token] = re.findall(r"/outbox/download/([^/\s]+)/", stored.body_text)
    assert attachment_uuid_from_token(token) == str(attachment.uuid)
    url = f"http://127.0.0.1:8000/outbox/download/{token}/"
    assert stored.body_text == (
        f"Guten Tag.\n\nDownloads (valid for 30 days):\n- bericht.pdf: {url}\n"
    )
    assert stored.body_html == (
        f'<p>Guten Tag.</p><p>Downloads (valid for 30 days):</p><ul><li><a href="{url}">'
        "bericht.pdf</a></li></ul>"
    )
    assert stored.attachment_type == AttachmentType.LINK


def test_enqueue_many_in_one_transaction_dispatches_once_per_configuration(
    default_configuration, django_capture_on_commit_callbacks
):
    other = SmtpConfigurationFactory()

    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        for number in range(5):
            enqueue(to=[f"r{number}@example.org"], subject="Erinnerung")
        enqueue(to=["lab@example.org"], subject="Andere", smtp_configuration=other)

    assert OutboxMessage.objects.count() == 6
    assert [callback.configuration_id for callback in callbacks] == [
        default_configuration.pk,
        other.pk,
    ]


def test_enqueue_after_rolled_back_savepoint_dispatches_again(
    default_configuration, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        try:
            with transaction.atomic():
                enqueue(to=["lab@example.org"], subject="Verworfen")
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        enqueue(to=["lab@example.org"], subject="Behalten")

    assert list(OutboxMessage.objects.values_list("subject", flat=True)) == ["Behalten"]
    assert len(callbacks) == 1
