import datetime as dt

import pytest
import time_machine
from celery import current_app as celery_app
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection as db
from django.urls import reverse
from django.utils import timezone

from calserver import tasks
from calserver.models import CalServerConnection, SyncRun, SyncStatus
from calserver.selectors import is_managed, managed_kinds
from inventory.models import Customer, Instrument
from tests.calserver_fake import V1_KEY, V1_PASSWORD
from tests.factories import CustomerFactory, InstrumentFactory, UserFactory


@pytest.fixture
def eager():
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


def enable(connection):
    connection.tested_at = timezone.now()
    connection.sync_enabled = True
    connection.save()
    return connection


# --- read-only edit paths -------------------------------------------------------------------


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.mark.django_db
def test_managed_kinds_only_with_schedule_and_mapping(v2_connection):
    assert managed_kinds() == set()

    enable(v2_connection)

    assert managed_kinds() == {"customers", "instruments"}
    assert is_managed("inventory.Customer") and is_managed("inventory.instrument")
    assert not is_managed("inventory.supportticket")


@pytest.mark.django_db
def test_admin_edit_of_managed_customer_is_read_only(client_for, superuser, v2_connection):
    customer = CustomerFactory(name="Vorher")
    enable(v2_connection)
    client = client_for(superuser)
    client.post("/i18n/setlang/", {"language": "en"})
    url = reverse("admin:inventory_customer_change", args=[customer.pk])

    page = client.get(url, follow=True).content.decode()
    refused = client.post(url, {"number": customer.number, "name": "Nachher", "language": "de"})
    add = client.get(reverse("admin:inventory_customer_add"))

    assert "Managed by calServer: changes are made in calServer." in page
    assert 'name="_save"' not in page
    assert refused.status_code == 403
    assert add.status_code == 403
    customer.refresh_from_db()
    assert customer.name == "Vorher"


@pytest.mark.django_db
def test_admin_edit_of_unmanaged_kind_stays_editable(client_for, superuser, v2_connection):
    enable(v2_connection)
    instrument_page = client_for(superuser).get(reverse("admin:inventory_supportticket_add"))

    assert instrument_page.status_code == 200


@pytest.mark.django_db
def test_admin_edit_without_connection_is_editable(client_for, superuser):
    customer = CustomerFactory(name="Vorher")

    response = client_for(superuser).get(
        reverse("admin:inventory_customer_change", args=[customer.pk])
    )

    assert 'name="_save"' in response.content.decode()


# --- key rotation -------------------------------------------------------------------------


def raw_secrets(pk):
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT password, api_key, api_token FROM calserver_calserverconnection WHERE id = %s",
            [pk],
        )
        return cursor.fetchone()


@pytest.mark.django_db
def test_rotate_fernet_keys_reencrypts_calserver_credentials(settings, v1_connection):
    CalServerConnection.objects.filter(pk=v1_connection.pk).update(api_token="tok-123456")
    before = raw_secrets(v1_connection.pk)
    old_key = settings.FERNET_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new_key, old_key]

    call_command("rotate_fernet_keys")
    settings.FERNET_KEYS = [new_key]

    after = raw_secrets(v1_connection.pk)
    assert all(a != b and a.startswith("gAAAA") for a, b in zip(after, before, strict=True))
    loaded = CalServerConnection.objects.get(pk=v1_connection.pk)
    assert (loaded.password, loaded.api_key, loaded.api_token) == (
        V1_PASSWORD,
        V1_KEY,
        "tok-123456",
    )


# --- beat ---------------------------------------------------------------------------------


def test_beat_schedule_runs_the_sync_check():
    entry = django_settings.CELERY_BEAT_SCHEDULE["calserver-sync-due"]

    assert entry["task"] == "calserver.sync_due"
    assert entry["schedule"] == 60.0
    assert "calserver.sync_due" in celery_app.tasks
    assert "calserver.sync_run" in celery_app.tasks


@pytest.mark.django_db
def test_sync_due_runs_hourly_once_tested_and_enabled(
    v2_connection, eager, django_capture_on_commit_callbacks
):
    start = dt.datetime(2026, 12, 6, 8, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        assert tasks.sync_due() is None  # not enabled
        enable(v2_connection)
        with django_capture_on_commit_callbacks(execute=True):
            first = tasks.sync_due()
    with time_machine.travel(start + dt.timedelta(minutes=59), tick=False):
        too_early = tasks.sync_due()
    with (
        time_machine.travel(start + dt.timedelta(minutes=61), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        second = tasks.sync_due()

    assert first is not None and too_early is None and second is not None
    runs = list(SyncRun.objects.order_by("started_at"))
    assert [(r.trigger, r.status) for r in runs] == [
        ("schedule", SyncStatus.SUCCEEDED),
        ("schedule", SyncStatus.SUCCEEDED),
    ]
    assert runs[1].unchanged == 7
    assert Customer.objects.count() == 2 and Instrument.objects.count() == 5


@pytest.mark.django_db
def test_instrument_not_from_calserver_is_never_inactivated(v2_connection, eager):
    local = InstrumentFactory(inventory_number="LOCAL-1", external_id=None)
    from calserver import services

    services.sync_run_execute(
        run_id=services.sync_run_create(connection=v2_connection, trigger="manual").pk
    )

    local.refresh_from_db()
    assert local.is_active is True
