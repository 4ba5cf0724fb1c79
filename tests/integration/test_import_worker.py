"""A spreadsheet import run by a real Celery worker: the pages queue the dry run and the
import as tasks, the worker runs them against the shared PostgreSQL database, and the
progress endpoint the page polls reports rows done / total until the run is done."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from openpyxl import Workbook

from imports.models import ImportRun, ImportStatus
from inventory.models import Instrument
from maillog.models import LogEntry
from tests.factories import CustomerFactory
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
INSTRUMENTS = 400
CUSTOMERS = 20


def instruments_xlsx() -> bytes:
    """400 instruments of 20 customers, German dates; one row names an unknown customer."""
    book = Workbook()
    sheet = book.active
    sheet.append(["Inventarnr.", "Bezeichnung", "Kunde", "Letzte Kalibrierung", "Intervall"])
    for n in range(INSTRUMENTS):
        sheet.append(
            [
                f"INV-{n:05d}",
                f"Messschieber {n}",
                str(90000 + n % CUSTOMERS),
                f"{1 + n % 28:02d}.{1 + n % 12:02d}.2025",
                12 if n % 2 else 24,
            ]
        )
    sheet.append(["INV-UNKNOWN", "Ohne Kunde", "99999", "01.01.2025", 12])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_import_runs_dry_run_and_import_in_the_worker(celery_workers, client_for, admin):
    for n in range(CUSTOMERS):
        CustomerFactory(number=str(90000 + n))
    client = client_for(admin)
    total = INSTRUMENTS + 1

    response = client.post(
        reverse("imports:upload", args=["instruments"]),
        {
            "file": SimpleUploadedFile("Prüfmittel.xlsx", instruments_xlsx(), content_type=XLSX),
            "template": "",
        },
    )
    run = ImportRun.objects.get()
    assert response["Location"] == reverse("imports:mapping", args=[run.pk])
    progress_url = reverse("imports:progress", args=[run.pk])

    def progress() -> dict:
        return client.get(progress_url).json()

    def details() -> str:
        return f"progress {progress()}\n{celery_workers.logs()}"

    # The dry run is queued on Redis; no worker runs yet, so the page sees it waiting at 0.
    response = client.post(
        reverse("imports:mapping", args=[run.pk]),
        {
            "column_0": "inventory_number",
            "column_1": "description",
            "column_2": "customer_number",
            "column_3": "last_calibration",
            "column_4": "calibration_interval_months",
            "date_format": "%d.%m.%Y",
            "value_maps": "",
            "save_as": "",
        },
    )
    assert response["Location"] == reverse("imports:run", args=[run.pk])
    assert progress() == {
        "status": ImportStatus.ANALYSING,
        "running": True,
        "rows_done": 0,
        "rows_total": total,
        "error": "",
    }

    celery_workers.start("w1")
    analysed = wait_for(
        lambda: (state := progress())["status"] == ImportStatus.ANALYSED and state,
        timeout=60,
        what="the worker's dry run",
        details=details,
    )
    assert analysed == {
        "status": ImportStatus.ANALYSED,
        "running": False,
        "rows_done": total,
        "rows_total": total,
        "error": "",
    }
    run.refresh_from_db()
    assert (run.created, run.updated, run.unchanged, run.rejected) == (INSTRUMENTS, 0, 0, 1)
    assert run.rejections[0]["line"] == total + 1
    assert Instrument.objects.count() == 0

    client.post(reverse("imports:confirm", args=[run.pk]))
    readings = []

    def imported():
        readings.append(state := progress())
        return state["status"] == ImportStatus.DONE and state

    done = wait_for(imported, timeout=60, what="the worker's import", details=details)

    assert done == {
        "status": ImportStatus.DONE,
        "running": False,
        "rows_done": total,
        "rows_total": total,
        "error": "",
    }
    # The bar only ever moves forward, against the file's row count.
    assert {reading["rows_total"] for reading in readings} == {total}
    done_counts = [reading["rows_done"] for reading in readings]
    assert done_counts == sorted(done_counts)
    assert all(
        reading["running"] for reading in readings if reading["status"] == ImportStatus.IMPORTING
    )
    run.refresh_from_db()
    assert (run.created, run.updated, run.unchanged, run.rejected) == (INSTRUMENTS, 0, 0, 1)
    assert run.finished_at is not None
    assert Instrument.objects.count() == INSTRUMENTS
    assert Instrument.objects.filter(customer__number="90000").count() == INSTRUMENTS // CUSTOMERS
    dates = {
        number: (last, due)
        for number, last, due in Instrument.objects.filter(
            inventory_number__in=["INV-00000", "INV-00001"]
        ).values_list("inventory_number", "last_calibration", "next_due_date")
    }
    assert dates == {
        "INV-00000": (dt.date(2025, 1, 1), dt.date(2027, 1, 1)),
        "INV-00001": (dt.date(2025, 2, 2), dt.date(2026, 2, 2)),
    }
    assert LogEntry.objects.filter(content_type__model="importrun", object_id=run.pk).count() == 1
