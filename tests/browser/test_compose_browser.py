"""Compose end to end: write a mail to a customer and a distribution list with an
attachment, preview it, send it, and find it delivered with the attachment intact.

Delivered twice over: by mailbox.delivery.deliver_due in the test process (runs
everywhere), and by a real Celery worker (needs PostgreSQL and redis-server, like
tests/integration).
"""

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from calmail.common.roles import POWER_USER
from mailbox.delivery import deliver_due
from mailbox.models import OutboxMessage
from tests.browser.recipient_picker import pick
from tests.factories import CustomerFactory, DistributionListFactory, SmtpConfigurationFactory

# The real-worker harness (PostgreSQL, a Redis and Celery workers of the test's own); the
# test that uses it is skipped locally without PostgreSQL, like tests/integration.
from tests.integration.conftest import (  # noqa: F401 (fixtures)
    celery_workers,
    integration_services,
    redis_server,
    wait_for,
)

PASSWORD = "correct horse battery staple"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


@pytest.fixture
def composer(django_user_model):
    user = django_user_model.objects.create_user(
        username="paula", password=PASSWORD, email="paula@example.com", first_name="Paula"
    )
    user.groups.add(Group.objects.get(name=POWER_USER))
    return user


def compose_and_send(page, live_server, login, composer, configuration) -> None:
    """In the browser: compose to a customer and a distribution list with an attachment,
    preview, send; the outbox then lists both mails with source "compose"."""
    CustomerFactory(
        number="4711", name="Muster Messtechnik GmbH", emails=["einkauf@muster.example"]
    )
    DistributionListFactory(name="Labor-Team", addresses=[("team@partner.example", "Partner")])
    login(composer, PASSWORD)

    page.goto(f"{live_server.url}/compose/")
    expect(page.locator("select[name=smtp_configuration]")).to_have_value(str(configuration.pk))
    pick(page, "to", "Muster", "4711 · Muster Messtechnik GmbH")
    pick(page, "to", "Labor-Team", "Labor-Team")
    page.fill("input[name=subject]", "Ihr Kalibrierschein")
    page.locator("[data-editor-for=body_html]").fill("Guten Tag, anbei der Schein.")
    page.set_input_files(
        "input[name=new_files]",
        files=[{"name": "Kalibrierschein.pdf", "mimeType": "application/pdf", "buffer": PDF}],
    )
    with page.expect_navigation():
        page.click("[data-testid=preview]")

    planned = page.locator("[data-testid=planned-mails]")
    expect(planned).to_contain_text("einkauf@muster.example")
    expect(planned).to_contain_text("Partner <team@partner.example>")
    expect(planned).to_contain_text("Labor-Team")
    expect(page.locator("[data-testid=attachments]")).to_contain_text("Kalibrierschein.pdf")
    expect(page.frame_locator("[data-testid=body-frame]").locator("body")).to_contain_text(
        "Guten Tag, anbei der Schein."
    )
    # The button sits below the body's frame: scrolled to first, as a reader would (an
    # implicit scroll during the click can land it beside a button Bootstrap scrolls
    # to smoothly).
    page.locator("[data-testid=send]").scroll_into_view_if_needed()
    with page.expect_navigation():
        page.click("[data-testid=send]")

    assert "/outbox/" in page.url and "source=compose" in page.url
    rows = OutboxMessage.objects.order_by("pk")
    assert [(m.to, m.source, m.created_by_id) for m in rows] == [
        (["Muster Messtechnik GmbH <einkauf@muster.example>"], "compose", composer.pk),
        (["Partner <team@partner.example>"], "compose", composer.pk),
    ]
    table = page.locator("table")
    expect(table).to_contain_text("einkauf@muster.example")
    expect(table).to_contain_text("von Hand geschrieben")


def assert_delivered(page, smtp_server) -> None:
    received = sorted(smtp_server.messages, key=lambda m: m.recipients)
    assert [m.recipients for m in received] == [
        ["einkauf@muster.example"],
        ["team@partner.example"],
    ]
    for message in received:
        assert message.subject == "Ihr Kalibrierschein"
        [attachment] = list(message.message.iter_attachments())
        assert attachment.get_filename() == "Kalibrierschein.pdf"
        assert attachment.get_content() == PDF
    # A reload shows the new status.
    page.reload()
    expect(page.locator("table")).to_contain_text("gesendet")
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"sent"}


def smtp_configuration(smtp_server):
    return SmtpConfigurationFactory(
        name="Labor-Server",
        is_default=True,
        host=smtp_server.host,
        port=smtp_server.port,
        security="none",
        from_email="labor@calserver.example",
    )


def test_compose_preview_send_and_deliver(page, live_server, login, composer, smtp_server):
    configuration = smtp_configuration(smtp_server)
    compose_and_send(page, live_server, login, composer, configuration)

    # What the worker's delivery task runs, here in the test process.
    deliver_due(configuration_id=configuration.pk, worker_id="test")
    assert_delivered(page, smtp_server)


@pytest.mark.services
def test_compose_delivered_by_real_worker(page, live_server, login, composer, smtp_server, request):
    workers = request.getfixturevalue("celery_workers")
    configuration = smtp_configuration(smtp_server)
    workers.start("w1")
    compose_and_send(page, live_server, login, composer, configuration)

    wait_for(
        lambda: set(OutboxMessage.objects.values_list("status", flat=True)) == {"sent"},
        timeout=60,
        what="the composed mails to be sent by the worker",
        details=workers.logs,
    )
    assert_delivered(page, smtp_server)
