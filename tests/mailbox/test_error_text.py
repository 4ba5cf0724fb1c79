"""Errors a worker writes are stored as msgid and parameters and shown in the language
of whoever reads them; error_message keeps the worker's text for search and filters."""

import pytest
from django.urls import reverse

from mailbox.models import OutboxMessage, Status
from mailbox.services import message_resend
from tests.factories import OutboxMessageFactory
from tests.mailbox.conftest import deliver, due_mail

REFUSED = {
    "msgid": "Message refused: %(reply)s",
    "params": {"reply": "554 5.7.1 Message rejected as spam"},
}


def test_a_refusal_is_stored_as_msgid_and_parameters(configuration, smtp_server):
    message = due_mail(configuration)
    smtp_server.fail_data = (554, "5.7.1 Message rejected as spam")

    deliver(configuration)

    message = OutboxMessage.objects.get(pk=message.pk)
    assert (message.status, message.error_text, message.error_message) == (
        Status.FAILED,
        REFUSED,
        "Message refused: 554 5.7.1 Message rejected as spam",
    )


def test_giving_up_nests_the_last_error(configuration, smtp_server, settings):
    settings.CALMAIL_RETRY_BACKOFF = []
    message = due_mail(configuration)
    smtp_server.fail_data = (451, "4.3.0 Try later")

    deliver(configuration)

    message = OutboxMessage.objects.get(pk=message.pk)
    assert message.error_text == {
        "msgid": "Gave up after %(count)s attempts: %(error)s",
        "params": {
            "count": 1,
            "error": {
                "msgid": "Message refused: %(reply)s",
                "params": {"reply": "451 4.3.0 Try later"},
            },
        },
    }


@pytest.mark.django_db
def test_detail_and_list_show_the_error_in_the_readers_language(client_for, admin, english):
    client = client_for(admin)
    message = OutboxMessageFactory(
        status=Status.FAILED,
        error_message="Nachricht abgelehnt: 554 5.7.1 Message rejected as spam",
        error_text=REFUSED,
    )

    detail = client.get(reverse("mailbox:detail", args=[message.pk])).content.decode()
    listed = client.get(reverse("mailbox:list")).content.decode()
    response = client.get(reverse("mailbox:list"), {"_export": "csv"})
    exported = b"".join(response.streaming_content).decode("utf-8-sig")

    english_text = "Message refused: 554 5.7.1 Message rejected as spam"
    assert english_text in detail
    assert english_text in listed
    assert english_text in exported
    assert "Nachricht abgelehnt" not in detail + listed + exported


@pytest.mark.django_db
def test_german_reader_sees_the_german_error(client_for, admin):
    message = OutboxMessageFactory(
        status=Status.FAILED, error_message="Message refused: 554 no", error_text=REFUSED
    )

    detail = client_for(admin).get(reverse("mailbox:detail", args=[message.pk])).content.decode()

    assert "Nachricht abgelehnt: 554 5.7.1 Message rejected as spam" in detail


@pytest.mark.django_db
def test_mails_from_before_show_their_stored_error(client_for, admin, english):
    message = OutboxMessageFactory(status=Status.FAILED, error_message="Alter Fehlertext")

    detail = client_for(admin).get(reverse("mailbox:detail", args=[message.pk])).content.decode()

    assert message.error_text == {}
    assert "Alter Fehlertext" in detail


@pytest.mark.django_db
def test_resend_clears_both_error_fields():
    message = OutboxMessageFactory(status=Status.FAILED, error_message="x", error_text=REFUSED)

    message_resend(message=message)

    message.refresh_from_db()
    assert (message.error_message, message.error_text) == ("", {})
