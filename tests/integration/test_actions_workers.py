"""An action fired by Celery beat, run by a real worker, delivered to an SMTP server."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess

import openpyxl
import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from actions import services
from actions.models import ActionRun, RunStatus
from actions.selectors import sent_count
from mailbox.models import OutboxMessage, Status
from tests import clock
from tests.factories import (
    CustomerFactory,
    InstrumentFactory,
    MailTemplateFactory,
    SmtpConfigurationFactory,
)
from tests.integration.conftest import REPO_ROOT, _live_groups, _stop_group, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def start_beat(celery_workers, tmp_path) -> subprocess.Popen:
    """`celery beat` with the project's schedule (actions.tick every 30 s)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "calmail.settings_test",
        "DATABASE_URL": celery_workers.database_url,
        "CELERY_BROKER_URL": celery_workers.broker_url,
        "SECRET_KEY": os.environ["SECRET_KEY"],
        "FERNET_KEYS": os.environ["FERNET_KEYS"],
        "CALMAIL_VAR_DIR": str(tmp_path / "beat-var"),
        "PYTHONUNBUFFERED": "1",
    }
    (tmp_path / "beat-var").mkdir(exist_ok=True)
    log = open(tmp_path / "beat.log", "ab")  # noqa: SIM115 - the child keeps it
    process = subprocess.Popen(
        # At the test process's clock (CALMAIL_TEST_CLOCK): beat fires what is due by it.
        [*clock.python_command(), "-m", "celery", "-A", "calmail", "beat", "--loglevel", "INFO"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    _live_groups.add(process.pid)
    return process


def test_beat_fires_action_and_three_customers_get_their_report(
    celery_workers, redis_server, integration_smtp_server, tmp_path
):
    server = integration_smtp_server()
    configuration = SmtpConfigurationFactory(
        host="127.0.0.1",
        port=server.port,
        security="none",
        smtp_auth=False,
        from_email="calmail@example.com",
    )
    customers = []
    for number in ("41001", "41002", "41003"):
        customer = CustomerFactory(number=number, emails=[f"labor@kunde{number}.example"])
        InstrumentFactory(
            customer=customer,
            inventory_number=f"INV-{number}",
            last_calibration=timezone.localdate() - dt.timedelta(days=400),
        )
        customers.append(customer)
    now = timezone.localtime()
    due = (now + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
    action = services.action_create(
        values={
            "description": "Fällige Prüfmittel",
            "time_of_day": due.time(),
            "start": now - dt.timedelta(days=1),
            "group": Group.objects.create(name="Labor"),
            "template": MailTemplateFactory(),
            "smtp_configuration": configuration,
            "recipients": [f"customer:{c.pk}" for c in customers],
        }
    )
    assert action.next_due_at == due
    celery_workers.start("w1", concurrency=2)
    beat = start_beat(celery_workers, tmp_path)

    def details() -> str:
        beat_log = (tmp_path / "beat.log").read_text(errors="replace")[-3000:]
        runs = list(ActionRun.objects.values("status", "queued_count", "skipped"))
        statuses = list(OutboxMessage.objects.values_list("status", flat=True))
        return f"runs {runs}, outbox {statuses}\n{celery_workers.logs()}\n--- beat ---\n{beat_log}"

    try:
        wait_for(
            lambda: OutboxMessage.objects.filter(action=action, status=Status.SENT).count() == 3,
            timeout=150,
            what="three mails of the action sent",
            details=details,
        )
    finally:
        _stop_group(beat, grace=5)

    received = {str(m.message["To"]): m.message for m in server.messages}
    assert sorted(received) == [f"labor@kunde{n}.example" for n in ("41001", "41002", "41003")]
    for number, message in received.items():
        attachments = [part for part in message.walk() if part.get_filename()]
        assert [a.get_filename().endswith(".xlsx") for a in attachments] == [True]
        sheet = openpyxl.load_workbook(io.BytesIO(attachments[0].get_payload(decode=True))).active
        cells = {str(cell.value) for row in sheet.iter_rows() for cell in row}
        own = number.split("kunde")[1].split(".")[0]
        assert f"INV-{own}" in cells
        assert {f"INV-{n}" for n in ("41001", "41002", "41003") if n != own} & cells == set()
    run = ActionRun.objects.get(action=action)
    assert (run.slot, run.status, run.queued_count, run.skipped_count) == (
        due,
        RunStatus.DONE,
        3,
        0,
    )
    assert sent_count(action) == 3
