"""An action to "customers with matching records", run by a real worker, delivered to an
SMTP server: only the customers with due rows get a mail, each with only their rows."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from actions import runs, services, tasks
from actions.models import ActionRun, RunStatus
from mailbox.models import OutboxMessage, Status
from tests.factories import (
    CustomerFactory,
    InstrumentFactory,
    MailTemplateFactory,
    SmtpConfigurationFactory,
)
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def excel_cells(message) -> set[str]:
    attachments = [part for part in message.walk() if part.get_filename()]
    assert [a.get_filename().endswith(".xlsx") for a in attachments] == [True]
    sheet = openpyxl.load_workbook(io.BytesIO(attachments[0].get_payload(decode=True))).active
    return {str(cell.value) for row in sheet.iter_rows() for cell in row}


def test_matching_customers_audience_mails_only_customers_with_due_rows(
    celery_workers, redis_server, integration_smtp_server
):
    server = integration_smtp_server()
    configuration = SmtpConfigurationFactory(
        host="127.0.0.1",
        port=server.port,
        security="none",
        smtp_auth=False,
        from_email="calmail@example.com",
    )
    # The worker's "today" is the run's slot, taken from the same (real) clock.
    today = timezone.localdate()
    overdue = today - dt.timedelta(days=400)
    first = CustomerFactory(number="81001", emails=["labor@kunde81001.example"])
    second = CustomerFactory(number="81002", emails=["labor@kunde81002.example"])
    nothing_due = CustomerFactory(number="81003", emails=["labor@kunde81003.example"])
    InstrumentFactory(customer=first, inventory_number="INV-81001-A", last_calibration=overdue)
    InstrumentFactory(customer=first, inventory_number="INV-81001-B", last_calibration=overdue)
    InstrumentFactory(customer=second, inventory_number="INV-81002-A", last_calibration=overdue)
    InstrumentFactory(
        customer=nothing_due,
        inventory_number="INV-81003-A",
        last_calibration=today - dt.timedelta(days=30),
    )
    action = services.action_create(
        values={
            "description": "Fällige Prüfmittel je Kunde",
            "time_of_day": dt.time(7),
            "start": timezone.now() - dt.timedelta(days=1),
            "group": Group.objects.create(name="Labor"),
            "template": MailTemplateFactory(due_filter="due_overdue"),
            "smtp_configuration": configuration,
            "recipients": ["audience:matching_customers"],
        }
    )
    celery_workers.start("w1", concurrency=2)

    run = runs.action_run_now(action=action)
    tasks.dispatch_run(run_id=run.pk)

    def details() -> str:
        runs_ = list(ActionRun.objects.values("status", "queued_count", "skipped", "audience"))
        statuses = list(OutboxMessage.objects.values_list("recipient", "status"))
        return f"runs {runs_}, outbox {statuses}\n{celery_workers.logs()}"

    wait_for(
        lambda: OutboxMessage.objects.filter(action=action, status=Status.SENT).count() == 2,
        timeout=120,
        what="two mails of the action sent",
        details=details,
    )
    run.refresh_from_db()
    assert (run.status, run.queued_count, run.skipped_count) == (RunStatus.DONE, 2, 0)
    assert run.audience["mails"] == 2

    received = {str(m.message["To"]): m.message for m in server.messages}
    assert sorted(received) == ["labor@kunde81001.example", "labor@kunde81002.example"]
    first_cells = excel_cells(received["labor@kunde81001.example"])
    second_cells = excel_cells(received["labor@kunde81002.example"])
    numbers = {"INV-81001-A", "INV-81001-B", "INV-81002-A", "INV-81003-A"}
    assert first_cells & numbers == {"INV-81001-A", "INV-81001-B"}
    assert second_cells & numbers == {"INV-81002-A"}
