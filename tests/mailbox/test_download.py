"""The public, signed download link of attachments sent as links."""

import datetime

import pytest
from django.core import signing
from django.urls import reverse

from mailbox.links import attachment_token, attachment_url
from mailbox.models import OutboxAttachment
from tests.factories import OutboxAttachmentFactory, OutboxMessageFactory

START = datetime.datetime(2025, 6, 1, 8, 0, tzinfo=datetime.UTC)


@pytest.fixture
def link_attachment(db, time_machine):
    time_machine.move_to(START, tick=False)
    message = OutboxMessageFactory(attachment_type="link")
    return OutboxAttachmentFactory(
        message=message, filename="Prüfbericht.pdf", content=b"%PDF-1.4 Bericht"
    )


def download(client, token, method="get"):
    response = getattr(client, method)(reverse("mailbox:download", args=[token]))
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return response, content


@pytest.mark.django_db
def test_link_download_serves_file_without_login_and_counts(client, link_attachment, time_machine):
    token = attachment_token(link_attachment)
    time_machine.move_to(START + datetime.timedelta(days=3), tick=False)

    first, content = download(client, token)
    download(client, token)

    stored = OutboxAttachment.objects.get(pk=link_attachment.pk)
    assert first.status_code == 200
    assert content == b"%PDF-1.4 Bericht"
    assert first["Content-Type"] == "application/pdf"
    assert first["Content-Disposition"] == "attachment; filename*=utf-8''Pr%C3%BCfbericht.pdf"
    assert first["X-Content-Type-Options"] == "nosniff"
    assert (stored.download_count, stored.last_downloaded_at) == (
        2,
        START + datetime.timedelta(days=3),
    )


@pytest.mark.django_db
def test_link_url_in_mail_points_at_the_download_view(link_attachment, settings):
    settings.CALMAIL_BASE_URL = "https://calmail.example.com/"

    url = attachment_url(link_attachment)

    token = attachment_token(link_attachment)
    assert url == f"https://calmail.example.com/outbox/download/{token}/"


@pytest.mark.django_db
def test_link_head_request_does_not_count(client, link_attachment):
    response, _content = download(client, attachment_token(link_attachment), method="head")

    assert response.status_code == 200
    assert OutboxAttachment.objects.get(pk=link_attachment.pk).download_count == 0


@pytest.mark.django_db
def test_link_expired_is_410_with_explanation(client, link_attachment, time_machine, settings):
    settings.CALMAIL_LINK_TTL_DAYS = 30
    client.cookies["django_language"] = "en"
    token = attachment_token(link_attachment)
    time_machine.move_to(START + datetime.timedelta(days=30, seconds=1), tick=False)

    response, content = download(client, token)

    assert response.status_code == 410
    assert "This download link has expired" in content.decode()
    assert "valid for 30 days" in content.decode()
    assert OutboxAttachment.objects.get(pk=link_attachment.pk).download_count == 0


@pytest.mark.django_db
def test_link_on_last_valid_day_still_works(client, link_attachment, time_machine, settings):
    settings.CALMAIL_LINK_TTL_DAYS = 30
    token = attachment_token(link_attachment)
    time_machine.move_to(START + datetime.timedelta(days=29, hours=23), tick=False)

    response, content = download(client, token)

    assert (response.status_code, content) == (200, b"%PDF-1.4 Bericht")


def _tampered(token: str) -> list[str]:
    value, timestamp, signature = token.rsplit(":", 2)
    other_uuid = "00000000-0000-4000-8000-000000000000"
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    return [
        f"{value}:{timestamp}:{flipped}",
        f"{other_uuid}:{timestamp}:{signature}",
        f"{value}:{timestamp}",
        "nonsense",
        # Signed, but for another purpose (no salt).
        signing.TimestampSigner().sign(value),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("variant", range(5))
def test_link_tampered_is_404(client, link_attachment, variant):
    token = _tampered(attachment_token(link_attachment))[variant]

    response, content = download(client, token)

    assert response.status_code == 404
    assert b"%PDF" not in content
    assert OutboxAttachment.objects.get(pk=link_attachment.pk).download_count == 0


@pytest.mark.django_db
def test_link_token_of_file_attachment_is_refused(client, db):
    # Attachment type "file": the file went with the mail; there is nothing to download.
    message = OutboxMessageFactory(attachment_type="file")
    attachment = OutboxAttachmentFactory(message=message)

    response, content = download(client, attachment_token(attachment))

    assert response.status_code == 404
    assert b"%PDF" not in content
    assert OutboxAttachment.objects.get(pk=attachment.pk).download_count == 0


@pytest.mark.django_db
def test_link_of_deleted_mail_is_404(client, link_attachment):
    token = attachment_token(link_attachment)
    link_attachment.message.delete()

    response, _content = download(client, token)

    assert response.status_code == 404
