"""How the outbox shows a mail's status and parameters: a coloured badge with the word in
the reader's language, parameters in words (cut in the list, whole on the detail page)."""

import pytest
from django.urls import reverse
from django.utils import translation
from django.utils.text import Truncator

from mailbox.models import Status
from mailbox.tables import STATUS_BADGES, parameters_text, status_badge
from tests.factories import OutboxMessageFactory

GERMAN_STATUS = {
    Status.SCHEDULED: "geplant",
    Status.QUEUED: "in Warteschlange",
    Status.SENDING: "wird gesendet",
    Status.SENT: "gesendet",
    Status.DEFERRED: "zurückgestellt",
    Status.FAILED: "fehlgeschlagen",
    Status.CANCELLED: "abgebrochen",
}


def test_every_status_has_a_badge_colour_of_its_own():
    colours = [STATUS_BADGES[status] for status in Status]

    assert len(set(colours)) == len(Status) == len(colours)
    assert all(colour.startswith("text-bg-") for colour in colours)


@pytest.mark.parametrize("status", list(Status))
def test_status_badge_says_the_status_in_german(status):
    message = OutboxMessageFactory.build(status=status)

    with translation.override("de"):
        html = status_badge(message)

    assert html == f'<span class="badge {STATUS_BADGES[status]}">{GERMAN_STATUS[status]}</span>'


def test_parameters_text_names_known_keys_in_the_readers_language():
    parameters = {
        "rows": 12,
        "language": "de",
        "template": "Kalibrier-Erinnerung",
        "filter": "due_overdue",
        "due_window_days": 30,
    }

    with translation.override("de"):
        text = parameters_text(parameters)

    # Known keys in a fixed order (the template first), whatever order they were stored in.
    assert text.startswith("Vorlage: Kalibrier-Erinnerung · Sprache: de · Filter: ")
    assert "Fälligkeitsfenster (Tage): 30" in text
    assert "due_overdue" not in text


def test_parameters_text_in_english_with_unknown_keys_as_they_are():
    parameters = {
        "link": "https://calmail.example/d/1",
        "template": "Reminder",
        "report": "due-instruments",
        "report_scope": "all customers (internal)",
        "scope": "all",
        "compose_batch": "3f2a",
        "extra": {"a": 1},
    }

    text = parameters_text(parameters)

    assert text == (
        "Template: Reminder · Report: due-instruments · Report scope: all customers "
        "(internal) · Scope key: all · Compose batch: 3f2a · link: https://calmail.example/d/1 · "
        'extra: {"a": 1}'
    )


def test_parameters_text_of_no_parameters_is_empty():
    assert parameters_text({}) == ""


@pytest.mark.django_db
def test_outbox_list_cuts_long_values_and_keeps_them_whole_on_hover(client_for, admin):
    subject = "Kalibrierung fällig: " + "Messschieber 150 mm, " * 8
    error = "550 5.1.1 <anna@kunde-a.de>: Recipient address rejected: " + "x" * 80
    message = OutboxMessageFactory(status="failed", subject=subject, error_message=error)

    response = client_for(admin).get(reverse("mailbox:list"))

    html = response.content.decode()
    escaped_error = error.replace("<", "&lt;").replace(">", "&gt;")
    assert f'title="{escaped_error}"' in html
    assert f'title="{subject}"' in html
    assert f'href="{reverse("mailbox:detail", args=[message.pk])}" title="{subject}"' in html
    # Cut in the cell: the whole error appears only in the title attribute.
    assert html.count(escaped_error) == 1
    assert f">{Truncator(subject).chars(60)}</a>" in html
    assert '<span class="badge text-bg-danger">fehlgeschlagen</span>' in html


@pytest.mark.django_db
def test_outbox_list_shows_parameters_as_words_not_code(client_for, admin):
    OutboxMessageFactory(parameters={"template": "Kalibrier-Erinnerung", "language": "de"})
    client = client_for(admin)
    client.post(
        reverse("common:columns"), {"table": "mailbox.OutboxTable", "columns": ["parameters"]}
    )

    html = client.get(reverse("mailbox:list")).content.decode()

    assert "Vorlage: Kalibrier-Erinnerung · Sprache: de" in html
    assert "<code>" not in html


@pytest.mark.django_db
def test_outbox_detail_shows_the_whole_parameters_and_error(client_for, admin):
    long_value = "Kunde " * 30
    message = OutboxMessageFactory(
        status="failed",
        error_message="421 4.7.0 " + "Too many connections " * 6,
        parameters={"template": "Kalibrier-Erinnerung", "report_scope": long_value},
    )

    html = client_for(admin).get(reverse("mailbox:detail", args=[message.pk])).content.decode()

    assert (
        f'data-testid="parameters">Vorlage: Kalibrier-Erinnerung · Berichtsumfang: {long_value}</dd>'
        in html
    )
    assert message.error_message in html
