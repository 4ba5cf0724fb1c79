"""The Django admin shows mails to superusers, read-only."""

import pytest

from mailbox.models import OutboxMessage
from tests.factories import DeliveryAttemptFactory, OutboxAttachmentFactory, OutboxMessageFactory


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "x"))
    return client


@pytest.mark.django_db
def test_admin_lists_and_shows_mail_read_only(superuser_client):
    message = OutboxMessageFactory(subject="Prüfbericht", body_html="<p>Inhalt</p>")
    OutboxAttachmentFactory(message=message, filename="bericht.pdf")
    DeliveryAttemptFactory(message=message, reply_text="2.0.0 Ok")

    listing = superuser_client.get("/admin/mailbox/outboxmessage/")
    change = superuser_client.get(f"/admin/mailbox/outboxmessage/{message.pk}/change/")
    posted = superuser_client.post(
        f"/admin/mailbox/outboxmessage/{message.pk}/change/", {"subject": "Geändert"}
    )

    html = change.content.decode()
    assert (listing.status_code, change.status_code) == (200, 200)
    assert "Prüfbericht" in listing.content.decode()
    assert "bericht.pdf" in html and "2.0.0 Ok" in html
    assert 'name="subject"' not in html
    assert 'name="body_html"' not in html
    assert 'name="_save"' not in html
    assert posted.status_code == 403
    assert OutboxMessage.objects.get(pk=message.pk).subject == "Prüfbericht"


@pytest.mark.django_db
def test_admin_offers_no_add_or_delete(superuser_client):
    message = OutboxMessageFactory()

    add = superuser_client.get("/admin/mailbox/outboxmessage/add/")
    delete = superuser_client.get(f"/admin/mailbox/outboxmessage/{message.pk}/delete/")

    assert (add.status_code, delete.status_code) == (403, 403)
