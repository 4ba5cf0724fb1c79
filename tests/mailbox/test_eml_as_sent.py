"""The .eml download is byte for byte what the SMTP server received (issue 18, point 12):
for a mail enqueue() built and for one whose files are attached when it is sent."""

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from mailbox.delivery import deliver_due
from mailbox.models import OutboxMessage
from mailbox.services import AttachmentSpec, enqueue
from tests.factories import OutboxMessageFactory
from tests.mailbox.conftest import WORKER, configuration_for

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


@pytest.fixture
def server(smtp_server_factory):
    server = smtp_server_factory()
    return server, configuration_for(server)


def _download(client, message) -> bytes:
    response = client.get(reverse("mailbox:raw", args=[message.pk]))
    assert response.status_code == 200
    return response.content


def test_eml_of_a_mail_with_files_is_what_the_server_received(client_for, admin, server):
    smtp_server, configuration = server
    message = enqueue(
        to=["lab@example.org"],
        bcc=["archiv@example.org"],
        subject="Bericht März",
        body_text="Anbei der Bericht.",
        body_html="<p>Anbei der Bericht.</p>",
        attachments=[
            AttachmentSpec("bericht.pdf", PDF, "application/pdf"),
            AttachmentSpec("liste.csv", "Nr;Name\r\n1;Prüfmittel\r\n".encode(), "text/csv"),
        ],
        smtp_configuration=configuration,
    )
    # Sent and downloaded at other moments than it was queued: the Date stays.
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=7)):
        deliver_due(configuration_id=configuration.pk, worker_id=WORKER)
    [received] = smtp_server.messages

    with time_machine.travel(timezone.now() + timezone.timedelta(days=3)):
        downloaded = _download(client_for(admin), message)

    assert downloaded == received.raw
    assert downloaded.count(b"--=_calmail_") >= 5  # mixed and alternative parts
    assert b"archiv@example.org" not in downloaded


def test_eml_of_a_plain_mail_is_what_the_server_received(client_for, admin, server):
    smtp_server, configuration = server
    message = enqueue(
        to=["lab@example.org"],
        subject="Erinnerung",
        body_text="Text ohne Zeilenende",
        smtp_configuration=configuration,
    )
    deliver_due(configuration_id=configuration.pk, worker_id=WORKER)
    [received] = smtp_server.messages

    assert _download(client_for(admin), message) == received.raw


def test_a_retry_of_a_mail_with_files_sends_the_same_bytes(server):
    from mailbox.services import message_resend

    smtp_server, configuration = server
    message = enqueue(
        to=["lab@example.org"],
        subject="Bericht",
        body_text="Anbei.",
        attachments=[AttachmentSpec("bericht.pdf", PDF, "application/pdf")],
        smtp_configuration=configuration,
    )
    deliver_due(configuration_id=configuration.pk, worker_id=WORKER)
    message_resend(message=OutboxMessage.objects.get(pk=message.pk))
    with time_machine.travel(timezone.now() + timezone.timedelta(hours=1)):
        deliver_due(configuration_id=configuration.pk, worker_id=WORKER)

    first, second = smtp_server.messages
    assert first.raw == second.raw


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "This mail was queued before its attachments could be rebuilt exactly"),
        ("de", "Diese Mail wurde eingereiht, bevor ihre Anhänge genau nachgebaut werden konnten"),
    ],
)
def test_eml_of_an_older_mail_with_files_is_refused(client_for, admin, language, text):
    # Queued before the Date was fixed at enqueue: a build now would not be what was sent.
    message = OutboxMessageFactory(attachment_type="file", attachment_count=1, raw_message=b"")
    client = client_for(admin)
    client.post("/i18n/setlang/", {"language": language})

    detail = client.get(reverse("mailbox:detail", args=[message.pk])).content.decode()
    response = client.get(reverse("mailbox:raw", args=[message.pk]), follow=True)

    assert reverse("mailbox:raw", args=[message.pk]) not in detail
    assert response.redirect_chain == [(reverse("mailbox:detail", args=[message.pk]), 302)]
    assert text in response.content.decode()
