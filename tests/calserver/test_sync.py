import datetime as dt
import logging

import pytest
import time_machine
from django.utils import timezone

from calserver import services
from calserver.models import SyncRun, SyncStatus, SyncTrigger
from inventory.models import Customer, CustomerContact, Instrument
from inventory.recipients import resolve_selection
from maillog.models import LogEntry
from tests.calserver.conftest import CUSTOMER_A, CUSTOMER_B, make_connection
from tests.calserver_fake import (
    TOKEN_PREFIX,
    V1_KEY,
    V1_PASSWORD,
    V2_PASSWORD,
    v1_inventory,
    v2_inventory,
)
from tests.factories import CustomerFactory, InstrumentFactory

SECRETS = (V1_PASSWORD, V1_KEY, V2_PASSWORD, TOKEN_PREFIX)


def sync(connection, trigger=SyncTrigger.MANUAL) -> SyncRun:
    run = services.sync_run_create(connection=connection, trigger=trigger)
    return services.sync_run_execute(run_id=run.pk)


def counts(run):
    return (run.created, run.updated, run.unchanged, run.inactivated, run.rejected)


def no_secret_in(*texts):
    joined = "\n".join(str(text) for text in texts)
    return not any(secret in joined for secret in SECRETS)


@pytest.mark.django_db
def test_sync_v2_creates_customers_and_instruments(v2_connection):
    run = sync(v2_connection)

    assert run.status == SyncStatus.SUCCEEDED
    assert counts(run) == (7, 0, 0, 0, 0)
    customer = Customer.objects.get(external_id=CUSTOMER_A)
    assert (customer.number, customer.name, customer.city) == (
        "10001",
        "Muster Messtechnik GmbH",
        "Jena",
    )
    instruments = Instrument.objects.filter(customer=customer).order_by("inventory_number")
    assert [i.inventory_number for i in instruments] == [f"INV-{n:03d}" for n in range(1, 6)]
    first = instruments[0]
    assert (
        first.serial_number,
        first.manufacturer,
        first.model,
        first.calibration_interval_months,
    ) == (
        "SN-INV-001",
        "Fluke",
        "87V",
        12,
    )
    assert run.per_kind["instruments"]["created"] == 5


@pytest.mark.django_db
def test_sync_second_run_is_all_unchanged(v2_connection):
    sync(v2_connection)

    second = sync(v2_connection)

    assert counts(second) == (0, 0, 7, 0, 0)
    assert Instrument.objects.count() == 5


@pytest.mark.django_db
def test_sync_updates_changed_and_inactivates_missing_records(v2_connection, fake):
    sync(v2_connection)
    records = fake.v2["/api/v2/inventories"]
    records[0]["attributes"]["description"] = "Oszilloskop"
    del records[4]  # gone from calServer

    run = sync(v2_connection)

    assert counts(run) == (0, 1, 5, 1, 0)
    assert Instrument.objects.get(inventory_number="INV-001").description == "Oszilloskop"
    gone = Instrument.objects.get(inventory_number="INV-005")
    assert gone.is_active is False  # kept, never deleted


@pytest.mark.django_db
def test_sync_reactivates_a_record_that_comes_back(v2_connection, fake):
    sync(v2_connection)
    back = fake.v2["/api/v2/inventories"].pop()
    sync(v2_connection)
    fake.v2["/api/v2/inventories"].append(back)

    run = sync(v2_connection)

    assert run.per_kind["instruments"]["updated"] == 1
    assert Instrument.objects.get(inventory_number="INV-005").is_active is True


@pytest.mark.django_db
def test_sync_rejects_bad_records_and_stores_the_rest(v2_connection, fake):
    fake.v2["/api/v2/inventories"] += [
        v2_inventory("bad-interval", "INV-900", CUSTOMER_A, calibration_interval="zwölf"),
        v2_inventory("no-customer", "INV-901", "unknown-customer"),
        "not a record",
        v2_inventory("no-description", "INV-902", CUSTOMER_B, description=""),
    ]

    run = sync(v2_connection)

    assert run.status == SyncStatus.SUCCEEDED
    assert counts(run) == (7, 0, 0, 0, 4)
    reasons = {item["id"]: item["reason"] for item in run.rejections}
    assert (
        reasons["bad-interval"]
        == "calibration_interval_months (attributes.calibration_interval): a whole number was expected"
    )
    assert (
        reasons["no-customer"]
        == "unknown customer unknown-customer (not among the synced customers)"
    )
    assert reasons[""] == "the record is not a JSON object"
    assert reasons["no-description"] == "description is missing"
    assert not Instrument.objects.filter(
        inventory_number__in=["INV-900", "INV-901", "INV-902"]
    ).exists()


@pytest.mark.django_db
def test_sync_rejected_record_keeps_its_stored_row_active(v2_connection, fake):
    sync(v2_connection)
    fake.v2["/api/v2/inventories"][0]["attributes"]["calibration_interval"] = "bald"

    run = sync(v2_connection)

    assert (run.rejected, run.inactivated) == (1, 0)
    assert Instrument.objects.get(inventory_number="INV-001").is_active is True


@pytest.mark.django_db
def test_sync_takes_over_an_imported_record_by_its_number(v2_connection):
    imported = CustomerFactory(number="10001", name="Alt", external_id=None)
    InstrumentFactory(inventory_number="INV-001", customer=imported, external_id=None)

    run = sync(v2_connection)

    imported.refresh_from_db()
    assert imported.external_id == CUSTOMER_A
    assert imported.name == "Muster Messtechnik GmbH"
    assert Customer.objects.count() == 2
    assert run.per_kind["customers"] == {
        "created": 1,
        "updated": 1,
        "unchanged": 0,
        "inactivated": 0,
        "rejected": 0,
    }


@pytest.mark.django_db
def test_sync_retries_429_with_retry_after_and_500(v2_connection, fake):
    fake.fail_next("/api/v2/inventories", 429, headers={"Retry-After": "1"}, page=2)
    fake.fail_next("/api/v2/inventories", 500, page=2)
    fake.fail_next("/api/v2/customers", 503)

    started = timezone.now()
    run = sync(v2_connection)

    assert run.status == SyncStatus.SUCCEEDED
    assert counts(run) == (7, 0, 0, 0, 0)
    page_two = [r for r in fake.requests_to("/api/v2/inventories") if r[2]["page[number]"] == "2"]
    assert len(page_two) == 3
    # Retry-After: 1 was honoured, not the 10 ms backoff.
    assert (timezone.now() - started).total_seconds() >= 1


@pytest.mark.django_db
def test_sync_retries_a_timeout(fake, db):
    connection = make_connection(fake, "v2", timeout=1)
    fake.delay_next("/api/v2/customers", 1.5)

    run = sync(connection)

    assert run.status == SyncStatus.SUCCEEDED
    assert Customer.objects.count() == 2


@pytest.mark.django_db
def test_sync_gives_up_after_retries_and_inactivates_nothing(v2_connection, fake):
    sync(v2_connection)
    fake.fail_next("/api/v2/inventories", 500, times=10, page=2)

    run = sync(v2_connection)

    assert run.status == SyncStatus.FAILED
    assert run.last_error == (
        "Instruments: calServer did not answer after 4 tries: HTTP 500 for /api/v2/inventories"
    )
    assert run.inactivated == 0
    assert Instrument.objects.filter(is_active=True).count() == 5
    assert run.per_kind["customers"]["unchanged"] == 2


@pytest.mark.django_db
def test_sync_expired_token_signs_in_again_once(v2_connection, fake):
    sync(v2_connection)
    assert fake.tokens_issued == 1
    fake.expire_tokens()

    run = sync(v2_connection)

    assert run.status == SyncStatus.SUCCEEDED
    assert fake.tokens_issued == 2


@pytest.mark.django_db
def test_sync_stored_token_is_reused_and_encrypted(v2_connection, fake):
    sync(v2_connection)
    sync(v2_connection)

    assert fake.tokens_issued == 1
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute("SELECT api_token, password FROM calserver_calserverconnection")
        token, password = cursor.fetchone()
    assert token.startswith("gAAAA") and TOKEN_PREFIX not in token
    assert password.startswith("gAAAA") and V2_PASSWORD not in password


@pytest.mark.django_db
def test_sync_wrong_v2_password_stops_with_clear_message(fake, db):
    connection = make_connection(fake, "v2", password="falsch-falsch")

    run = sync(connection)

    assert run.status == SyncStatus.FAILED
    assert run.last_error == (
        "calServer refused the sign-in (HTTP 422): check the e-mail address and password."
    )
    assert Customer.objects.count() == 0


@pytest.mark.django_db
def test_sync_401_stops_the_whole_run(fake, db):
    connection = make_connection(fake, "v1", api_key="wrong-key-123")

    run = sync(connection)

    assert run.status == SyncStatus.FAILED
    assert run.last_error == "calServer refused the credentials (HTTP 401) for /api/customer."
    # Stopped: the instruments were not even asked for.
    assert fake.requests_to("/api/inventory") == []
    assert len(fake.requests_to("/api/customer")) == 1


@pytest.mark.django_db
def test_sync_403_stops_without_retrying(v2_connection, fake):
    fake.fail_next("/api/v2/customers", 403)

    run = sync(v2_connection)

    assert run.status == SyncStatus.FAILED
    assert run.last_error == (
        "calServer denied access (HTTP 403) to /api/v2/customers: the API user lacks the permission."
    )
    assert fake.requests_to("/api/v2/inventories") == []
    assert Customer.objects.count() == 0


@pytest.mark.django_db
def test_sync_v1_credentials_in_headers(v1_connection, fake):
    run = sync(v1_connection)

    assert counts(run) == (5, 0, 0, 0, 0)
    assert Instrument.objects.get(external_id="M1").description == "Messschieber"
    assert Instrument.objects.get(external_id="M1").customer.external_id == "K1"
    _method, _path, query, headers = fake.requests_to("/api/inventory")[0]
    assert headers["HTTP_X_REST_API_KEY"] == V1_KEY
    assert "HTTP_X_REST_API_KEY" not in query
    assert (query["limit"], query["offset"]) == ("2", "0")
    assert [r[2]["offset"] for r in fake.requests_to("/api/inventory")] == ["0", "2"]


@pytest.mark.django_db
def test_sync_v1_behind_a_proxy_dropping_headers_needs_query_parameters(fake, db):
    fake.drop_underscore_headers = True
    by_headers = make_connection(fake, "v1")

    refused = sync(by_headers)
    by_headers.credential_transport = "query"
    by_headers.save()
    accepted = sync(by_headers)

    assert refused.status == SyncStatus.FAILED
    assert accepted.status == SyncStatus.SUCCEEDED
    assert Instrument.objects.count() == 3
    assert fake.requests_to("/api/inventory")[0][2]["HTTP_X_REST_PASSWORD"] == V1_PASSWORD


@pytest.mark.django_db
def test_sync_never_leaks_credentials_to_log_run_or_worker_log(fake, db, caplog):
    caplog.set_level(logging.DEBUG)
    # settings keep urllib3 at INFO; were it at DEBUG, its request lines (URL and query)
    # must still carry no credential.
    caplog.set_level(logging.DEBUG, logger="urllib3")
    connection = make_connection(fake, "v1", credential_transport="query")
    fake.fail_next("/api/inventory", 500, times=10)
    v2 = make_connection(fake, "v2")
    fake.fail_next("/api/v2/customers", 403)

    runs = [sync(connection), sync(v2)]

    assert [run.status for run in runs] == [SyncStatus.FAILED, SyncStatus.FAILED]
    entries = [
        entry.rendered() + str(entry.details) + entry.search_text
        for entry in LogEntry.objects.all()
    ]
    assert no_secret_in(*entries)
    assert no_secret_in(*(run.last_error + str(run.rejections) for run in runs))
    messages = [record.getMessage() for record in caplog.records]
    assert any("HTTP_X_REST_PASSWORD=***" in message for message in messages)
    assert no_secret_in(*(record.getMessage() for record in caplog.records))


@pytest.mark.django_db
def test_sync_writes_one_log_entry_per_run(v2_connection):
    run = sync(v2_connection)

    entries = list(LogEntry.objects.filter(message__startswith="calServer sync"))
    assert len(entries) == 1
    assert entries[0].rendered() == (
        "calServer sync finished: 7 created, 0 updated, 0 unchanged, 0 inactivated, 0 rejected"
    )
    assert entries[0].details["run"] == run.pk


@pytest.mark.django_db
def test_sync_run_create_refuses_a_second_concurrent_run(v2_connection):
    first = services.sync_run_create(connection=v2_connection, trigger=SyncTrigger.MANUAL)

    second = services.sync_run_create(connection=v2_connection, trigger=SyncTrigger.MANUAL)

    assert first is not None and second is None


@pytest.mark.django_db
def test_sync_run_create_takes_back_a_stale_run(v2_connection):
    with time_machine.travel(dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC), tick=False):
        stale = services.sync_run_create(connection=v2_connection, trigger=SyncTrigger.MANUAL)
    with time_machine.travel(dt.datetime(2026, 12, 1, 11, 0, tzinfo=dt.UTC), tick=False):
        fresh = services.sync_run_create(connection=v2_connection, trigger=SyncTrigger.MANUAL)

    stale.refresh_from_db()
    assert stale.status == SyncStatus.FAILED
    assert stale.last_error == "The run was interrupted (its worker stopped)."
    assert fresh is not None


@pytest.mark.django_db
def test_sync_v1_extra_codes_are_unmapped_not_rejected(v1_connection, fake):
    fake.v1["/api/inventory"][1].append(v1_inventory("M9", "V1-009", "K2", I4250="x"))

    run = sync(v1_connection)

    assert run.rejected == 0
    assert Instrument.objects.get(external_id="M9").customer.external_id == "K2"


@pytest.mark.django_db
def test_a_contact_calserver_no_longer_lists_is_kept_but_never_mailed(v2_connection, fake):
    fake.v2["/api/v2/contacts"] = [
        {
            "id": f"c-{n}",
            "attributes": {"customer": CUSTOMER_A, "email": f"labor{n}@muster.example"},
        }
        for n in (1, 2)
    ]
    v2_connection.paths = {**v2_connection.paths, "contacts": "/api/v2/contacts"}
    v2_connection.mapping = {
        **v2_connection.mapping,
        "contacts": {
            "external_id": "id",
            "customer": "attributes.customer",
            "email": "attributes.email",
        },
    }
    v2_connection.save()
    sync(v2_connection)
    customer = Customer.objects.get(external_id=CUSTOMER_A)
    assert resolve_selection([f"customer:{customer.pk}"]).emails == [
        "labor1@muster.example",
        "labor2@muster.example",
    ]
    gone = fake.v2["/api/v2/contacts"].pop()

    run = sync(v2_connection)

    assert run.per_kind["contacts"]["inactivated"] == 1
    assert CustomerContact.objects.get(external_id="c-2").is_active is False  # kept
    assert resolve_selection([f"customer:{customer.pk}"]).emails == ["labor1@muster.example"]
    assert resolve_selection(["audience:active_customers"]).emails == ["labor1@muster.example"]
    # Listed again: mailed again.
    fake.v2["/api/v2/contacts"].append(gone)
    sync(v2_connection)
    assert CustomerContact.objects.get(external_id="c-2").is_active is True
