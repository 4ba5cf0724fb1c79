import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from openpyxl import load_workbook

from calmail.celery import app as celery_app
from imports.models import ImportRun, ImportStatus, MappingTemplate
from inventory.models import Customer
from tests.imports.conftest import xlsx_bytes

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def eager_tasks():
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


def upload(client, content, name="kunden.xlsx", template=""):
    return client.post(
        reverse("imports:upload", args=["customers"]),
        {"file": SimpleUploadedFile(name, content, content_type=XLSX), "template": template},
    )


@pytest.mark.parametrize("who", ["viewer", "power_user", "outsider"])
def test_non_administrators_get_403(request, db, client_for, who):
    client = client_for(request.getfixturevalue(who))

    for url in (reverse("imports:index"), reverse("imports:upload", args=["customers"])):
        response = client.get(url)
        assert response.status_code == 403
    response = upload(client, xlsx_bytes([["Kundennummer", "Name"], ["1", "A"]]))
    assert response.status_code == 403
    assert ImportRun.objects.count() == 0


def test_anonymous_is_sent_to_sign_in(client, db):
    response = client.get(reverse("imports:index"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_upload_needs_the_csrf_token(admin):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)

    response = upload(client, xlsx_bytes([["Kundennummer", "Name"], ["1", "A"]]))

    assert response.status_code == 403
    assert ImportRun.objects.count() == 0


def test_nav_link_only_for_administrators(client_for, admin, viewer):
    url = reverse("imports:index")

    viewer_page = client_for(viewer).get(reverse("inventory:data"), follow=True).content.decode()
    admin_page = client_for(admin).get(reverse("inventory:data"), follow=True).content.decode()

    assert f'href="{url}"' not in viewer_page
    assert f'href="{url}"' in admin_page


def test_whole_flow_upload_map_dry_run_confirm(
    client_for, admin, eager_tasks, django_capture_on_commit_callbacks
):
    client = client_for(admin)
    content = xlsx_bytes(
        [
            ["Kundennummer", "Name", "E-Mail"],
            ["1001", "Müller GmbH", "info@mueller.de"],
            ["1002", "Falsch", "kaputt"],
        ]
    )

    response = upload(client, content)
    run = ImportRun.objects.get()
    assert response["Location"] == reverse("imports:mapping", args=[run.pk])
    page = client.get(response["Location"]).content.decode()
    assert "Kundennummer" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("imports:mapping", args=[run.pk]),
            {
                "column_0": "number",
                "column_1": "name",
                "column_2": "contact_emails",
                "date_format": "%d.%m.%Y",
                "value_maps": "",
                "save_as": "calServer Kunden",
            },
        )
    assert response["Location"] == reverse("imports:run", args=[run.pk])
    run.refresh_from_db()
    assert (run.status, run.created, run.rejected) == (ImportStatus.ANALYSED, 1, 1)
    assert Customer.objects.count() == 0
    template = MappingTemplate.objects.get()
    assert (template.name, template.columns) == (
        "calServer Kunden",
        {"Kundennummer": "number", "Name": "name", "E-Mail": "contact_emails"},
    )
    page = client.get(
        reverse("imports:run", args=[run.pk]), HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert "bad e-mail address: kaputt" in page
    assert 'data-count="created">1<' in page

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("imports:confirm", args=[run.pk]))

    run.refresh_from_db()
    assert (run.status, run.created, run.rejected) == (ImportStatus.DONE, 1, 1)
    assert list(Customer.objects.values_list("number", flat=True)) == ["1001"]
    progress = client.get(reverse("imports:progress", args=[run.pk])).json()
    assert progress == {
        "status": "done",
        "running": False,
        "rows_done": 2,
        "rows_total": 2,
        "error": "",
    }


def test_mapping_requires_the_key_columns(client_for, admin):
    client = client_for(admin)
    upload(client, xlsx_bytes([["Kundennummer", "Name"], ["1001", "A"]]))
    run = ImportRun.objects.get()

    response = client.post(
        reverse("imports:mapping", args=[run.pk]),
        {"column_0": "number", "column_1": "", "date_format": "%d.%m.%Y"},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.status_code == 200
    assert "Choose a column for: name" in response.content.decode()
    run.refresh_from_db()
    assert run.status == ImportStatus.MAPPING


def test_a_saved_template_maps_the_next_upload(client_for, admin):
    template = MappingTemplate.objects.create(
        name="Kunden", kind="customers", columns={"Nr.": "number", "Firma": "name"}
    )
    client = client_for(admin)

    upload(client, xlsx_bytes([["Nr.", "Firma"], ["1", "A"]]), template=template.pk)

    run = ImportRun.objects.get()
    page = client.get(reverse("imports:mapping", args=[run.pk])).content.decode()
    assert run.mapping == template
    assert '<option value="number" selected>' in page


def test_unreadable_upload_is_refused(client_for, admin):
    response = upload(client_for(admin), b"PK\x03\x04garbage", name="kaputt.xlsx")

    assert response.status_code == 200
    assert ImportRun.objects.count() == 0


def test_rejected_rows_download_is_safe_xlsx(client_for, admin, run_import):
    run = run_import(
        "customers",
        # CSV: a workbook's formula would arrive as its value, text keeps it as written.
        b"Kundennummer;Name;E-Mail\n=1+1;@SUM(A1);nope\n",
        {"Kundennummer": "number", "Name": "name", "E-Mail": "contact_emails"},
        file_name="kunden.csv",
    )

    response = client_for(admin).get(reverse("imports:rejected", args=[run.pk]))

    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert response["Content-Type"] == XLSX
    assert rows[0][2:] == ["Kundennummer", "Name", "E-Mail"]
    assert rows[1][0] == 2
    assert rows[1][2:] == ["'=1+1", "'@SUM(A1)", "nope"]
