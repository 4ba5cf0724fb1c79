import datetime as dt
import json
import re

import pytest
import time_machine
from celery import current_app as celery_app
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from calserver.models import CalServerConnection, SyncRun, SyncStatus, SyncTrigger
from inventory.models import Customer, Instrument
from maillog.models import LogEntry
from tests.calserver.conftest import make_connection
from tests.calserver_fake import (
    TOKEN_PREFIX,
    V1_KEY,
    V1_PASSWORD,
    V2_EMAIL,
    V2_PASSWORD,
    v2_inventory,
)

URLS = ["calserver:detail", "calserver:update", "calserver:test"]


def page(response) -> str:
    return response.content.decode()


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def eager():
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


def form_data(fake, **overrides):
    data = {
        "base_url": fake.url,
        "api_version": "v2",
        "timeout": "5",
        "username": "",
        "password": V2_PASSWORD,
        "api_key": "",
        "credential_transport": "headers",
        "email": V2_EMAIL,
        "device_name": "calmail",
        "path_customers": "/api/v2/customers",
        "mapping_customers": "external_id = id\nnumber = attributes.customer_number\nname = attributes.name",
        "path_contacts": "",
        "mapping_contacts": "",
        "path_locations": "",
        "mapping_locations": "",
        "path_instruments": "/api/v2/inventories",
        "mapping_instruments": (
            "external_id = id\ninventory_number = attributes.asset_number\n"
            "description = attributes.description\ncustomer = relationships.customer.data.id\n"
            "calibration_interval_months = attributes.calibration_interval"
        ),
        "path_tickets": "",
        "mapping_tickets": "",
        "page_size": "2",
        "limit_param": "limit",
        "offset_param": "offset",
        "page_number_param": "page[number]",
        "page_size_param": "page[size]",
        "sync_interval_minutes": "60",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


# --- permissions ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("name", [*URLS, "calserver:sync"])
def test_calserver_views_anonymous_redirected_to_login(client, v2_connection, name):
    response = client.get(reverse(name))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["viewer", "power_user", "outsider"])
@pytest.mark.parametrize("name", URLS)
def test_calserver_views_refused_below_administrator(
    client_for, request, v2_connection, role, name
):
    response = client_for(request.getfixturevalue(role)).get(reverse(name))

    assert response.status_code == 403
    assert v2_connection.base_url not in page(response)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["viewer", "power_user"])
def test_calserver_sync_refused_below_administrator(client_for, request, v2_connection, role):
    v2_connection.tested_at = timezone.now()
    v2_connection.save()

    response = client_for(request.getfixturevalue(role)).post(reverse("calserver:sync"))

    assert response.status_code == 403
    assert SyncRun.objects.count() == 0


@pytest.mark.django_db
def test_calserver_run_of_another_kind_of_user_is_refused(client_for, viewer, v2_connection):
    run = SyncRun.objects.create(
        connection=v2_connection, trigger=SyncTrigger.MANUAL, started_at=timezone.now()
    )

    response = client_for(viewer).get(reverse("calserver:run_detail", args=[run.pk]))

    assert response.status_code == 403


@pytest.mark.django_db
def test_calserver_nav_entry_only_for_administrators(client_for, admin, viewer):
    assert reverse("calserver:detail") in page(client_for(admin).get(reverse("calserver:detail")))
    viewer_page = client_for(viewer).get(reverse("inventory:customer_list"))
    assert reverse("calserver:detail") not in page(viewer_page)


@pytest.mark.django_db
def test_calserver_sync_post_without_csrf_token_is_refused(admin, v2_connection):
    v2_connection.tested_at = timezone.now()
    v2_connection.save()
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)

    response = client.post(reverse("calserver:sync"))

    assert response.status_code == 403
    assert SyncRun.objects.count() == 0


# --- configuration form ---------------------------------------------------------------------


@pytest.mark.django_db
def test_form_creates_connection_with_encrypted_write_only_password(
    client_for, admin, fake, english
):
    client = client_for(admin)

    response = client.post(reverse("calserver:update"), form_data(fake))

    assert response.status_code == 302
    connection = CalServerConnection.objects.get()
    assert connection.password == V2_PASSWORD
    assert connection.mapping["instruments"]["inventory_number"] == "attributes.asset_number"
    assert connection.paths["customers"] == "/api/v2/customers"
    assert connection.tested_at is None and connection.sync_enabled is False
    edit_page = page(client.get(reverse("calserver:update")))
    assert V2_PASSWORD not in edit_page
    assert "Stored: leave blank to keep it" in edit_page
    # Blank keeps the stored password.
    client.post(reverse("calserver:update"), form_data(fake, password="", timeout="9"))
    connection.refresh_from_db()
    assert (connection.password, connection.timeout) == (V2_PASSWORD, 9)
    audit = LogEntry.objects.filter(audit_action="updated").get()
    assert audit.changes == {"timeout": [5, 9]}


@pytest.mark.django_db
def test_form_mapping_errors_name_their_lines(client_for, admin, fake, english):
    data = form_data(
        fake,
        mapping_instruments=(
            "external_id = id\n# a comment\nfoo = attributes.x\nserial_number attributes.sn\n"
            "model = attributes.model name\nexternal_id = attributes.uuid"
        ),
    )

    response = client_for(admin).post(reverse("calserver:update"), data)

    text = text_of(page(response))
    assert "Line 3: “foo” is not a calmail field here" in text
    assert "Line 4: write “calmail field = calServer field”." in text
    assert "Line 5: “attributes.model name” is not a calServer field or path" in text
    assert "Line 6: external_id is mapped twice." in text
    assert CalServerConnection.objects.count() == 0


@pytest.mark.django_db
def test_form_requires_external_id_for_a_synced_kind(client_for, admin, fake, english):
    data = form_data(fake, mapping_customers="number = attributes.customer_number")

    response = client_for(admin).post(reverse("calserver:update"), data)

    assert "Map external_id (calServer" in text_of(page(response))
    assert CalServerConnection.objects.count() == 0


@pytest.mark.django_db
def test_form_presets_fill_paths_and_mapping(client_for, admin, fake):
    data = form_data(fake, api_version="v1", load_preset="on", mapping_instruments="")

    client_for(admin).post(reverse("calserver:update"), data)

    connection = CalServerConnection.objects.get()
    assert connection.paths["instruments"] == "/api/inventory"
    assert connection.mapping["instruments"]["inventory_number"] == "I4201"
    assert connection.mapping["instruments"]["description"] == "I4204"


@pytest.mark.django_db
def test_form_schedule_needs_a_passed_test(client_for, admin, fake, english):
    client = client_for(admin)
    client.post(reverse("calserver:update"), form_data(fake))

    response = client.post(
        reverse("calserver:update"), form_data(fake, password="", sync_enabled="on")
    )

    assert "Test the connection first: the test must pass." in text_of(page(response))
    assert CalServerConnection.objects.get().sync_enabled is False


@pytest.mark.django_db
def test_detail_page_never_shows_credentials(client_for, admin, v1_connection, english):
    html = page(client_for(admin).get(reverse("calserver:detail")))

    assert v1_connection.username in html
    assert V1_PASSWORD not in html and V1_KEY not in html
    assert "API key set" in text_of(html)


# --- test connection ------------------------------------------------------------------------


@pytest.mark.django_db
def test_connection_test_shows_mapped_records_raw_json_and_marks(client_for, admin, fake, english):
    fake.v2["/api/v2/inventories"].insert(
        0, v2_inventory("bad-1", "INV-BAD", "c-x", calibration_interval="zwölf")
    )
    connection = make_connection(fake, "v2")
    client = client_for(admin)

    response = client.post(reverse("calserver:test"))

    html = page(response)
    text = text_of(html)
    assert "The connection works." in text
    connection.refresh_from_db()
    assert connection.tested_at is not None
    instruments = html[html.index('data-testid="preview-instruments"') :]
    assert instruments.count('data-testid="record"') == 2  # page size 2
    assert "INV-BAD" in instruments and "INV-001" in instruments
    assert 'data-testid="unparsable"' in instruments
    assert "a whole number was expected" in instruments
    assert "attributes.status" in instruments  # unmapped, marked
    assert 'data-testid="unmapped"' in instruments
    assert "&quot;asset_number&quot;: &quot;INV-001&quot;" in instruments  # the raw JSON
    assert "5 records in calServer." not in text  # 6 now
    assert "6 records in calServer." in text
    assert V2_PASSWORD not in html and TOKEN_PREFIX not in html
    assert Instrument.objects.count() == 0  # a test stores nothing


@pytest.mark.django_db
def test_connection_test_failure_keeps_schedule_off_and_shows_no_secret(
    client_for, admin, fake, english
):
    connection = make_connection(fake, "v1", api_key="wrong-api-key", credential_transport="query")

    response = client_for(admin).post(reverse("calserver:test"))

    text = text_of(page(response))
    assert (
        "The test failed. calServer refused the credentials (HTTP 401) for /api/customer." in text
    )
    assert "wrong-api-key" not in page(response)
    connection.refresh_from_db()
    assert connection.tested_at is None
    entry = LogEntry.objects.get(message="Connection test of %(object)s failed")
    assert "wrong-api-key" not in entry.search_text + json.dumps(entry.details)


@pytest.mark.django_db
def test_connection_test_then_schedule_can_be_enabled(client_for, admin, fake, english):
    client = client_for(admin)
    client.post(reverse("calserver:update"), form_data(fake))
    client.post(reverse("calserver:test"))

    response = client.post(
        reverse("calserver:update"), form_data(fake, password="", sync_enabled="on")
    )

    assert response.status_code == 302
    connection = CalServerConnection.objects.get()
    assert connection.sync_enabled is True and connection.tested_at is not None
    detail = text_of(page(client.get(reverse("calserver:detail"))))
    assert "hourly" in detail


@pytest.mark.django_db
def test_changing_the_base_url_voids_the_test_and_schedule(client_for, admin, fake, english):
    client = client_for(admin)
    client.post(reverse("calserver:update"), form_data(fake))
    client.post(reverse("calserver:test"))
    client.post(reverse("calserver:update"), form_data(fake, password="", sync_enabled="on"))

    client.post(
        reverse("calserver:update"),
        form_data(fake, password="", sync_enabled="on", base_url=fake.url + "/other"),
    )

    connection = CalServerConnection.objects.get()
    assert (connection.tested_at, connection.sync_enabled) == (None, False)


# --- sync on demand and the connection page -------------------------------------------------


@pytest.mark.django_db
def test_sync_now_runs_and_page_shows_run_and_data_age(
    client_for, admin, v2_connection, eager, django_capture_on_commit_callbacks, english
):
    v2_connection.tested_at = timezone.now()
    v2_connection.save()
    client = client_for(admin)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("calserver:sync"))

    assert response.status_code == 302
    run = SyncRun.objects.get()
    assert (run.status, run.trigger, run.requested_by) == (SyncStatus.SUCCEEDED, "manual", admin)
    assert Customer.objects.count() == 2 and Instrument.objects.count() == 5
    detail = text_of(page(client.get(reverse("calserver:detail"))))
    assert "old (last successful sync)" in detail
    assert "succeeded" in detail
    run_page = text_of(page(client.get(reverse("calserver:run_detail", args=[run.pk]))))
    assert "Instruments 5 0 0 0 0" in run_page


@pytest.mark.django_db
def test_sync_now_before_a_passed_test_is_refused(client_for, admin, v2_connection, english):
    response = client_for(admin).post(reverse("calserver:sync"), follow=True)

    assert SyncRun.objects.count() == 0
    assert "Test the connection first" in text_of(page(response))


@pytest.mark.django_db
def test_run_page_lists_rejected_records_with_reasons(
    client_for, admin, v2_connection, fake, english
):
    fake.v2["/api/v2/inventories"].append(v2_inventory("bad-9", "INV-9", "nobody"))
    from calserver import services

    # A rejection's reason is stored as the sync wrote it, in the language it ran in.
    with translation.override("en"):
        run = services.sync_run_execute(
            run_id=services.sync_run_create(connection=v2_connection, trigger="manual").pk
        )

    text = text_of(page(client_for(admin).get(reverse("calserver:run_detail", args=[run.pk]))))
    assert "bad-9 unknown customer nobody (not among the synced customers)" in text


# --- failing for more than a day: warning on the page and in /healthz -----------------------


def failed_run(
    connection, when, error="calServer did not answer after 4 tries: HTTP 500 for /api/v2/customers"
):
    return SyncRun.objects.create(
        connection=connection,
        trigger=SyncTrigger.SCHEDULE,
        status=SyncStatus.FAILED,
        started_at=when,
        finished_at=when + dt.timedelta(seconds=3),
        last_error=error,
    )


NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


@pytest.mark.django_db
def test_failing_sync_warns_after_a_day(client_for, admin, v2_connection, client, english):
    SyncRun.objects.create(
        connection=v2_connection,
        trigger=SyncTrigger.SCHEDULE,
        status=SyncStatus.SUCCEEDED,
        started_at=NOW - dt.timedelta(days=2),
        finished_at=NOW - dt.timedelta(days=2),
    )
    for hours in (25, 10, 1):
        failed_run(v2_connection, NOW - dt.timedelta(hours=hours))

    with time_machine.travel(NOW, tick=False):
        detail = text_of(page(client_for(admin).get(reverse("calserver:detail"))))
        overview = page(client_for(admin).get(reverse("overview:index")))
        health = client.get("/healthz")

    assert "The calServer sync has been failing since" in detail
    # The overview's "needs attention" names it too.
    assert 'data-testid="attention-sync"' in overview
    assert "HTTP 500 for /api/v2/customers" in text_of(overview)
    assert "HTTP 500 for /api/v2/customers" in detail
    assert health.status_code == 200
    body = json.loads(health.content)
    assert body["status"] == "ok"
    assert body["details"] == {"calserver_sync": "failing since 2026-12-05T11:00:00+00:00"}


@pytest.mark.django_db
def test_failing_sync_under_a_day_is_no_warning(client_for, admin, v2_connection, client):
    SyncRun.objects.create(
        connection=v2_connection,
        trigger=SyncTrigger.SCHEDULE,
        status=SyncStatus.SUCCEEDED,
        started_at=NOW - dt.timedelta(hours=30),
        finished_at=NOW - dt.timedelta(hours=30),
    )
    failed_run(v2_connection, NOW - dt.timedelta(hours=20))

    with time_machine.travel(NOW, tick=False):
        from calserver.selectors import failing_sync_warning

        warning = failing_sync_warning()
        body = json.loads(client.get("/healthz").content)

    assert warning is None
    assert body["details"] == {"calserver_sync": "ok, last success 2026-12-05T06:00:00+00:00"}
