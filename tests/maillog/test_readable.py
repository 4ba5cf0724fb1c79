"""The Log reads in the reader's language and time zone: object types, scheduler
parameters (trigger label, local slot), changes as a table, details as rows, sign-ins in
a category of their own that the list leaves out unless asked for."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_noop

from maillog.models import Category, LogEntry
from maillog.services import log_audit, log_event, log_scheduler_event
from maillog.tables import LogEntryTable, object_type_label
from tests.factories import SmtpConfigurationFactory, UserFactory

RUN_STARTED = gettext_noop(
    "Run of %(action)s started (%(trigger)s, slot %(slot)s) for %(recipients)s recipient(s)."
)
SCHEDULER_PARAMS = {
    "action": "Erinnerung",
    "trigger": "schedule",
    # Stored as the scheduler writes it: ISO 8601 in UTC (00:12 on 6 December in Berlin).
    "slot": "2026-12-05T23:12:00+00:00",
    "recipients": 3,
}


@pytest.mark.django_db
def test_object_type_keeps_the_capitals_of_its_name_in_both_languages():
    smtp_type = ContentType.objects.get(app_label="smtpconfig", model="smtpconfiguration")

    with translation.override("de"):
        german = object_type_label(smtp_type)
    with translation.override("en"):
        english = object_type_label(smtp_type)

    assert (german, english) == ("SMTP-Konfiguration", "SMTP configuration")


@pytest.mark.django_db
@time_machine.travel(datetime(2026, 12, 6, 8, 0, tzinfo=UTC), tick=False)
def test_scheduler_message_names_the_trigger_and_local_slot_in_the_readers_language():
    entry = log_scheduler_event(message=RUN_STARTED, params=SCHEDULER_PARAMS, actor=None)

    assert entry.params == SCHEDULER_PARAMS
    assert entry.rendered("de") == (
        "Lauf von Erinnerung gestartet (Zeitplan, Termin 06.12.2026 00:12) für 3 Empfänger."
    )
    assert entry.rendered("en") == (
        "Run of Erinnerung started (schedule, slot 12/06/2026 12:12 a.m.) for 3 recipient(s)."
    )
    # The search box finds the entry by what either language shows.
    assert "06.12.2026 00:12" in entry.search_text


@pytest.mark.django_db
def test_entries_written_before_still_read_and_odd_values_stay_as_stored():
    # Written directly, as old entries are in the database: no search text, plain values.
    old = LogEntry.objects.create(
        category=Category.SCHEDULER,
        message=RUN_STARTED,
        params={**SCHEDULER_PARAMS, "trigger": "unknown-trigger", "slot": "not a time"},
    )

    assert old.rendered("de") == (
        "Lauf von Erinnerung gestartet (unknown-trigger, Termin not a time) für 3 Empfänger."
    )


@pytest.mark.django_db
def test_the_log_page_shows_scheduler_entries_in_the_readers_language(client_for, admin, english):
    log_scheduler_event(message=RUN_STARTED, params=SCHEDULER_PARAMS, actor=None)
    client = client_for(admin)

    page = client.get(reverse("maillog:list"), {"category": "scheduler"}).content.decode()

    assert "(schedule, slot 12/06/2026 12:12 a.m.)" in page
    assert "2026-12-05T23:12" not in page


@pytest.mark.django_db
def test_changes_read_as_a_table_of_field_before_after(admin):
    configuration = SmtpConfigurationFactory(name="Relay")
    entry = log_audit(
        action="updated",
        obj=configuration,
        changes={"name": [None, "Relay"], "port": [25, 587], "password": "changed"},
        actor=admin,
    )
    table = LogEntryTable(LogEntry.objects.filter(pk=entry.pk), user=admin)

    with translation.override("de"):
        html = str(table.render_changes(record=entry))
        text = table.value_changes(record=entry)

    assert 'data-testid="changes"' in html
    assert '<th scope="col">Feld</th>' in html or '<th scope="col">Field</th>' in html
    assert "<td>Port</td><td>25</td><td>587</td>" in html
    assert "null" not in html
    assert text == "Name: — → Relay; Port: 25 → 587; Passwort: ••• → geändert"


@pytest.mark.django_db
@time_machine.travel(datetime(2026, 12, 6, 8, 0, tzinfo=UTC), tick=False)
def test_details_read_as_key_value_rows_not_json(admin):
    entry = log_event(
        category=Category.SCHEDULER,
        message=gettext_noop("%(action)s missed"),
        params={"action": "Erinnerung"},
        details={
            "slots": ["2026-12-05T23:12:00+00:00", "2026-12-06T07:00:00+00:00"],
            "reply_code": 250,
            "custom_key": "x",
        },
        actor=None,
    )
    table = LogEntryTable(LogEntry.objects.filter(pk=entry.pk), user=admin)

    with translation.override("en"):
        html = str(table.render_details(value=entry.details))
        text = table.value_details(value=entry.details)

    assert "{" not in html
    assert text == (
        "Slots: 12/06/2026 12:12 a.m., 12/06/2026 8 a.m.; Reply code: 250; Custom key: x"
    )


@pytest.mark.django_db
def test_sign_ins_have_their_own_category_hidden_unless_asked_for(client, admin, english):
    colleague = UserFactory(username="erika")
    client.force_login(colleague)  # signs in: user_logged_in
    log_event(
        category=Category.SECURITY,
        message=gettext_noop("Failed sign-in as %(user)s"),
        params={"user": "mallory"},
        actor=None,
        actor_label="",
    )
    client.force_login(admin)

    default = client.get(reverse("maillog:list")).content.decode()
    asked = client.get(reverse("maillog:list"), {"category": "sign_in"}).content.decode()

    assert set(LogEntry.objects.values_list("category", flat=True)) == {"sign_in", "security"}
    assert "erika signed in" not in default
    assert "Failed sign-in as mallory" in default
    assert "Sign-ins are not listed here." in default
    assert "erika signed in" in asked
    assert "Failed sign-in as mallory" not in asked
    assert "Sign-ins are not listed here." not in asked


@pytest.mark.django_db
def test_sign_in_note_in_german(client_for, admin):
    page = client_for(admin).get(reverse("maillog:list")).content.decode()

    assert 'data-testid="sign-ins-hidden"' in page


@pytest.mark.django_db(transaction=True)
def test_migration_moves_stored_sign_ins_into_their_category():
    executor = MigrationExecutor(connection)
    executor.migrate([("maillog", "0003_category_users")])
    old = executor.loader.project_state([("maillog", "0003_category_users")]).apps
    OldEntry = old.get_model("maillog", "LogEntry")
    signed_in = OldEntry.objects.create(
        category="security", message="%(user)s signed in", params={"user": "erika"}
    )
    failed = OldEntry.objects.create(
        category="security", message="Failed sign-in as %(user)s", params={"user": "x"}
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([("maillog", "0004_sign_in_category")])

    categories = dict(LogEntry.objects.values_list("pk", "category"))
    assert categories == {signed_in.pk: "sign_in", failed.pk: "security"}
