"""Where calServer manages a kind, its import is refused: on the page before the upload,
on the upload itself, and on every later step of a run uploaded before the sync began."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone, translation

from calserver.services import new_connection
from imports import services
from imports.models import ImportRun, ImportStatus
from inventory.models import Customer, Instrument
from tests.imports.conftest import xlsx_bytes

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MANAGED_EN = "Managed by calServer: import refused, changes come from calServer."
CUSTOMERS = xlsx_bytes([["Kundennummer", "Name"], ["1001", "Müller GmbH"]])
COLUMNS = {"Kundennummer": "number", "Name": "name"}


def calserver_syncing(*kinds: str):
    """A tested connection on schedule that syncs the kinds (a path and an id mapping each)."""
    connection = new_connection(api_version="v2")
    connection.base_url = "https://calserver.example"
    connection.paths = {kind: f"/api/v2/{kind}" for kind in kinds}
    connection.mapping = {kind: {"external_id": "id"} for kind in kinds}
    connection.tested_at = timezone.now()
    connection.sync_enabled = True
    connection.save()
    return connection


def german(text: str) -> str:
    with translation.override("de"):
        return translation.gettext(text)


def upload(client, kind="customers", content=CUSTOMERS):
    return client.post(
        reverse("imports:upload", args=[kind]),
        {"file": SimpleUploadedFile("export.xlsx", content, content_type=XLSX), "template": ""},
    )


def test_upload_page_of_a_managed_kind_refuses_before_the_upload(client_for, admin):
    calserver_syncing("customers", "instruments")
    client = client_for(admin)

    managed = client.get(reverse("imports:upload", args=["instruments"])).content.decode()
    free = client.get(reverse("imports:upload", args=["tickets"])).content.decode()
    index = client.get(reverse("imports:index")).content.decode()

    assert 'data-testid="import-refused"' in managed
    assert german(MANAGED_EN) in managed
    assert 'type="file"' not in managed
    assert 'data-testid="import-refused"' not in free
    assert 'type="file"' in free
    assert 'data-testid="import-managed-customers"' in index
    assert 'data-testid="import-managed-instruments"' in index
    assert 'data-testid="import-managed-tickets"' not in index


def test_upload_of_a_managed_kind_is_refused_and_stores_nothing(client_for, admin):
    calserver_syncing("customers")
    client = client_for(admin)

    response = client.post(
        reverse("imports:upload", args=["customers"]),
        {"file": SimpleUploadedFile("export.xlsx", CUSTOMERS, content_type=XLSX), "template": ""},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert MANAGED_EN in page
    assert 'type="file"' not in page
    assert ImportRun.objects.count() == 0
    assert Customer.objects.count() == 0


def test_managed_contacts_refuse_the_customers_import_too(admin):
    # The customers import writes their contacts as well.
    calserver_syncing("contacts")

    with pytest.raises(services.ImportRefused) as refused:
        services.run_create(
            kind="customers", file_name="k.xlsx", content=CUSTOMERS, user=admin, mapping=None
        )

    assert str(refused.value) == MANAGED_EN
    assert ImportRun.objects.count() == 0


def test_a_kind_calserver_does_not_manage_still_imports(admin, run_import):
    calserver_syncing("instruments")

    run = run_import("customers", CUSTOMERS, COLUMNS)

    assert (run.status, run.created) == (ImportStatus.DONE, 1)
    assert list(Customer.objects.values_list("number", flat=True)) == ["1001"]


def test_connection_not_on_schedule_manages_nothing(admin, run_import):
    connection = calserver_syncing("customers")
    connection.sync_enabled = False
    connection.save()

    run = run_import("customers", CUSTOMERS, COLUMNS)

    assert run.status == ImportStatus.DONE
    assert Customer.objects.count() == 1


def test_sync_switched_on_after_the_dry_run_refuses_the_confirm(client_for, admin, run_import):
    run = run_import("customers", CUSTOMERS, COLUMNS, confirm=False)
    assert run.status == ImportStatus.ANALYSED
    calserver_syncing("customers")

    response = client_for(admin).post(
        reverse("imports:confirm", args=[run.pk]), HTTP_ACCEPT_LANGUAGE="en", follow=True
    )

    run.refresh_from_db()
    assert run.status == ImportStatus.ANALYSED
    assert Customer.objects.count() == 0
    assert MANAGED_EN in response.content.decode()


def test_sync_switched_on_while_the_import_waits_fails_it_writing_nothing(admin, run_import):
    run = run_import("customers", CUSTOMERS, COLUMNS, confirm=False)
    services.run_confirm(run=run)
    calserver_syncing("customers")

    # What the worker's task runs, once it gets to the queued import.
    assert services.run_apply(run_id=run.pk) is None

    run.refresh_from_db()
    assert (run.status, run.error) == (ImportStatus.FAILED, MANAGED_EN)
    assert Customer.objects.count() == 0
    assert Instrument.objects.count() == 0
