import pytest
from django.utils import translation
from django.utils.translation import gettext_noop

from maillog.models import AuditAction, Category, Level, LogEntry
from maillog.services import (
    CHANGED,
    diff_fields,
    jsonable,
    log_audit,
    log_event,
    log_scheduler_event,
    snapshot,
)
from tests.factories import SmtpConfigurationFactory, UserFactory
from tests.maillog.conftest import entry_fields


def test_diff_fields_lists_old_and_new_of_changed_fields_only():
    changes = diff_fields(
        {"name": "A", "port": 25, "host": "x"}, {"name": "B", "port": 25, "host": "x"}
    )

    assert changes == {"name": ["A", "B"]}


def test_diff_fields_reports_a_secret_only_as_changed():
    changes = diff_fields(
        {"password": "alt-geheim", "username": "u"},
        {"password": "neu-geheim", "username": "u"},
    )

    assert changes == {"password": CHANGED}


def test_diff_fields_omits_an_unchanged_secret():
    assert diff_fields({"password": "s"}, {"password": "s"}) == {}


def test_diff_fields_against_nothing_lists_every_set_field():
    assert diff_fields({}, {"name": "A", "password": "x", "note": None}) == {
        "name": [None, "A"],
        "password": CHANGED,
    }


def test_jsonable_turns_dates_and_models_into_text(db):
    import datetime

    user = UserFactory(username="erika")

    assert jsonable({"when": datetime.date(2026, 5, 1), "who": user, "ids": (1, 2)}) == {
        "when": "2026-05-01",
        "who": "erika",
        "ids": [1, 2],
    }


@pytest.mark.django_db
def test_log_event_stores_every_field(team):
    user = UserFactory(username="erika")
    configuration = SmtpConfigurationFactory(name="Hauptserver")

    entry = log_event(
        category=Category.CONFIGURATION,
        level=Level.WARNING,
        message=gettext_noop("Connection test of %(object)s failed"),
        params={"object": "Hauptserver"},
        actor=user,
        obj=configuration,
        details={"reply_code": 535},
        group=team,
    )

    assert entry_fields(LogEntry.objects.get(pk=entry.pk)) == {
        "level": "warning",
        "category": "configuration",
        "actor": user,
        "actor_label": "erika",
        "content_type": "smtpconfig.smtpconfiguration",
        "object_id": configuration.pk,
        "object_label": "Hauptserver",
        "message": "Connection test of %(object)s failed",
        "params": {"object": "Hauptserver"},
        "details": {"reply_code": 535},
        "group": team,
        "audit_action": "",
        "changes": {},
    }


@pytest.mark.django_db
def test_log_event_renders_in_the_readers_language():
    # A msgid the German catalogue already has: the entry stores it untranslated.
    entry = log_event(
        category=Category.CONFIGURATION,
        message="%(name)s saved.",
        params={"name": "Hauptserver"},
        actor=None,
    )

    with translation.override("de"):
        german = entry.rendered()

    assert (
        entry.message,
        entry.rendered("en"),
        german,
        "Hauptserver gespeichert." in entry.search_text,
    ) == (
        "%(name)s saved.",
        "Hauptserver saved.",
        "Hauptserver gespeichert.",
        True,
    )


@pytest.mark.django_db
def test_log_event_outside_a_request_is_the_system():
    entry = log_scheduler_event(
        message=gettext_noop("Slot %(slot)s of %(action)s was missed"),
        params={"slot": "2026-05-01 06:00", "action": "Erinnerung"},
        level=Level.WARNING,
    )

    assert (entry.category, entry.actor, entry.actor_label, entry.rendered("en")) == (
        "scheduler",
        None,
        "system",
        # A time parameter in the reader's format (maillog.params).
        "Slot 05/01/2026 6 a.m. of Erinnerung was missed",
    )


@pytest.mark.django_db
def test_log_audit_records_action_changes_and_search_text():
    configuration = SmtpConfigurationFactory(name="Backup")
    user = UserFactory(username="admin2")

    entry = log_audit(
        action=AuditAction.UPDATED,
        obj=configuration,
        actor=user,
        changes=diff_fields({"port": 25}, snapshot(configuration, ["port"])),
    )

    assert (
        entry.audit_action,
        entry.changes,
        entry.rendered("en"),
        "Backup" in entry.search_text,
    ) == (
        "updated",
        {"port": [25, 587]},
        "Backup changed: port",
        True,
    )


def test_render_message_survives_params_that_do_not_fit():
    from maillog.models import render_message

    assert (
        render_message("%(a)s and %(b)s", {"a": 1}),
        render_message("Plain %(a)s", {"a": "x"}),
    ) == ("%(a)s and %(b)s", "Plain x")
