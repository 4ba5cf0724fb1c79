"""Signed, expiring download links for attachments sent as links (attachment type "link")."""

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "calmail.mailbox.attachment-link"


def attachment_token(attachment) -> str:
    return signing.TimestampSigner(salt=SALT).sign(str(attachment.uuid))


def attachment_url(attachment) -> str:
    """Absolute URL for the mail body; CALMAIL_BASE_URL is where recipients reach calmail."""
    path = reverse("mailbox:download", args=[attachment_token(attachment)])
    return settings.CALMAIL_BASE_URL.rstrip("/") + path


def attachment_uuid_from_token(token: str) -> str:
    """The attachment's uuid, or signing.SignatureExpired / signing.BadSignature."""
    max_age = timedelta(days=settings.CALMAIL_LINK_TTL_DAYS)
    return signing.TimestampSigner(salt=SALT).unsign(token, max_age=max_age)
