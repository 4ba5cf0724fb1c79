"""Each service that exists writes the expected log entry (compared field by field)."""

import pytest
from django.db import connection
from django.urls import reverse

from inventory import services as inventory_services
from mailbox import services as mailbox_services
from maillog.models import LogEntry
from smtpconfig import services as smtp_services
from templates_app import services as template_services
from tests.factories import (
    DistributionListFactory,
    MailTemplateFactory,
    OutboxAttachmentFactory,
    OutboxMessageFactory,
    SmtpConfigurationFactory,
    SystemAddressFactory,
    UserFactory,
)
from tests.maillog.conftest import entry_fields
from tests.smtpconfig.test_views import SECRET, form_data
from tests.templates_app.test_services import TEXTS, VALUES


def only_entry() -> LogEntry:
    # The test client's sign-in is an entry of its own; the rest is what we check.
    (entry,) = LogEntry.objects.exclude(category__in=["security", "sign_in"])
    return entry


def audit(
    content_type,
    obj,
    action,
    changes,
    *,
    actor=None,
    group=None,
    category="configuration",
    label=None,
):
    label = label if label is not None else str(obj)
    messages = {
        "created": "%(object)s created",
        "updated": "%(object)s changed: %(fields)s",
        "deleted": "%(object)s deleted",
    }
    return {
        "level": "info",
        "category": category,
        "actor": actor,
        "actor_label": actor.get_username() if actor else "system",
        "content_type": content_type,
        "object_id": obj.pk,
        "object_label": label,
        "message": messages[action],
        "params": {"object": label, "fields": ", ".join(changes)},
        "details": {},
        "group": group,
        "audit_action": action,
        "changes": changes,
    }


# --- SMTP configurations -------------------------------------------------------------------


@pytest.mark.django_db
def test_smtp_update_through_the_page_records_actor_and_password_only_as_changed(client_for, admin):
    configuration = SmtpConfigurationFactory(
        name="Hauptserver",
        host="mail.example.com",
        from_email="kalibrierlabor@example.com",
        smtp_auth=True,
        username="mailer",
        password=SECRET,
    )
    client = client_for(admin)

    client.post(
        reverse("smtpconfig:update", args=[configuration.pk]),
        form_data(port="465", security="ssl", password="Ganz-neu-789"),
    )

    assert entry_fields(only_entry()) == audit(
        "smtpconfig.smtpconfiguration",
        configuration,
        "updated",
        {"port": [587, 465], "password": "changed", "security": ["starttls", "ssl"]},
        actor=admin,
    )


@pytest.mark.django_db
def test_smtp_password_plaintext_appears_nowhere_in_the_log_table(client_for, admin):
    client = client_for(admin)
    client.post(reverse("smtpconfig:create"), form_data(password="Erst-Geheim-1"))
    created = LogEntry.objects.get(audit_action="created")
    client.post(
        reverse("smtpconfig:update", args=[created.object_id]), form_data(password="Zweit-Geheim-2")
    )

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM maillog_logentry")
        dump = repr(cursor.fetchall())
    assert ("Erst-Geheim-1" in dump, "Zweit-Geheim-2" in dump, created.changes["password"]) == (
        False,
        False,
        "changed",
    )


@pytest.mark.django_db
def test_smtp_create_records_initial_values_then_default(admin):
    configuration = smtp_services.smtp_configuration_create(
        values={
            "name": "Erster",
            "mailer": "smtp",
            "host": "a.example.com",
            "port": 25,
            "security": "none",
            "timeout": 10,
        },
        make_default=False,
    )

    created, made_default = LogEntry.objects.order_by("id")
    assert (created.audit_action, created.changes["name"], created.changes["host"]) == (
        "created",
        [None, "Erster"],
        [None, "a.example.com"],
    )
    assert entry_fields(made_default) == audit(
        "smtpconfig.smtpconfiguration", configuration, "updated", {"is_default": [False, True]}
    )


@pytest.mark.django_db
def test_smtp_set_default_duplicate_and_delete_are_audited(admin):
    first = SmtpConfigurationFactory(name="Eins", is_default=True)
    second = SmtpConfigurationFactory(name="Zwei")

    smtp_services.smtp_configuration_set_default(configuration=second)
    copy = smtp_services.smtp_configuration_duplicate(
        configuration=first, copy_password=False, name="Eins Kopie"
    )
    copy_pk = copy.pk
    smtp_services.smtp_configuration_delete(configuration=copy)

    entries = list(LogEntry.objects.order_by("id"))
    assert [(e.audit_action, e.object_label, e.object_id) for e in entries] == [
        ("updated", "Zwei", second.pk),
        ("created", "Eins Kopie", copy_pk),
        ("deleted", "Eins Kopie", copy_pk),
    ]
    assert entries[0].changes == {"is_default": [False, True]}


@pytest.mark.django_db
def test_smtp_delete_refused_leaves_no_entry(admin):
    configuration = SmtpConfigurationFactory(name="Benutzt")
    OutboxMessageFactory(smtp_configuration=configuration)

    with pytest.raises(Exception):  # noqa: B017 (ValidationError from the service)
        smtp_services.smtp_configuration_delete(configuration=configuration)

    assert LogEntry.objects.count() == 0


@pytest.mark.django_db
def test_connection_test_writes_a_configuration_event(client_for, admin):
    from tests.smtp_server import unused_port

    configuration = SmtpConfigurationFactory(
        name="Tot", host="127.0.0.1", port=unused_port(), security="none", timeout=2
    )
    client = client_for(admin)

    client.post(
        reverse("smtpconfig:test", args=[configuration.pk]),
        {"sender": "labor@example.com", "recipient": "kunde@example.com"},
    )

    entry = only_entry()
    assert (
        entry.category,
        entry.level,
        entry.actor,
        entry.object_id,
        entry.rendered("en"),
        sorted(entry.details),
    ) == (
        "configuration",
        "warning",
        admin,
        configuration.pk,
        "Connection test of Tot failed",
        ["duration_ms", "reply_code", "reply_text", "verdict"],
    )


# --- outbox ---------------------------------------------------------------------------------


def outbox_entry(message, action_text, *, actor, group, status):
    return {
        "level": "info",
        "category": "delivery",
        "actor": actor,
        "actor_label": actor.get_username() if actor else "system",
        "content_type": "mailbox.outboxmessage",
        "object_id": message.pk,
        "object_label": str(message),
        "message": f"Mail “%(subject)s” to %(recipient)s {action_text}",
        "params": {"subject": message.subject, "recipient": message.recipient},
        "details": {"status": status, "message_id": message.message_id},
        "group": group,
        "audit_action": "",
        "changes": {},
    }


@pytest.mark.django_db
def test_outbox_resend_through_the_page_is_logged_with_actor_and_group(client_for, admin, team):
    message = OutboxMessageFactory(status="failed", owner_group=team)

    client_for(admin).post(reverse("mailbox:resend", args=[message.pk]))

    message.refresh_from_db()
    assert entry_fields(only_entry()) == outbox_entry(
        message, "queued to be sent again", actor=admin, group=team, status="queued"
    )


@pytest.mark.django_db
def test_outbox_cancel_is_logged(team):
    message = OutboxMessageFactory(status="queued", owner_group=team)

    mailbox_services.message_cancel(message=message)

    assert entry_fields(only_entry()) == outbox_entry(
        message, "cancelled", actor=None, group=team, status="cancelled"
    )


@pytest.mark.django_db
def test_outbox_delete_is_logged_and_enqueue_is_not(team, django_capture_on_commit_callbacks):
    configuration = SmtpConfigurationFactory(is_default=True)
    with django_capture_on_commit_callbacks():
        queued = mailbox_services.enqueue(
            to=["a@example.com"], subject="Hallo", body_text="x", smtp_configuration=configuration
        )
    message = OutboxMessageFactory(status="sent", owner_group=team)
    expected = outbox_entry(message, "deleted", actor=None, group=team, status="sent")

    mailbox_services.message_delete(message=message)

    assert (entry_fields(only_entry()), queued.pk is not None) == (expected, True)


# --- templates, distribution lists, system addresses ------------------------------------------


@pytest.mark.django_db
def test_template_create_update_delete_are_audited(team):
    template = template_services.mail_template_create(
        values={**VALUES, "owner_group": team}, translations=TEXTS
    )
    template_services.mail_template_update(
        template=template,
        values={**VALUES, "owner_group": team, "due_window_days": 14},
        translations={**TEXTS, "en": {**TEXTS["en"], "subject": "Due: {{ customer.name }}"}},
    )
    pk, label = template.pk, str(template)
    template_services.mail_template_delete(template=template)

    created, updated, deleted = LogEntry.objects.order_by("id")
    assert (
        created.category,
        created.audit_action,
        created.group,
        created.changes["subject_de"],
    ) == (
        "template",
        "created",
        team,
        "changed",
    )
    assert entry_fields(updated) == audit(
        "templates_app.mailtemplate",
        template,
        "updated",
        {"due_window_days": [30, 14], "subject_en": "changed"},
        group=team,
        category="template",
    ) | {"object_id": pk}
    assert (deleted.audit_action, deleted.object_id, deleted.object_label) == ("deleted", pk, label)


@pytest.mark.django_db
def test_template_duplicate_is_audited_as_created():
    template = MailTemplateFactory(name="Vorlage")

    copy = template_services.mail_template_duplicate(template=template, name="Vorlage 2")

    assert [(e.audit_action, e.object_id) for e in LogEntry.objects.all()] == [("created", copy.pk)]


@pytest.mark.django_db
def test_distribution_list_update_records_fields_and_members(team):
    user = UserFactory(username="mitglied")
    distribution_list = DistributionListFactory(name="Labor", owner_group=team)

    inventory_services.distribution_list_update(
        distribution_list=distribution_list,
        name="Labor Nord",
        description="",
        owner_group=team,
        users=[user.pk],
        customers=[],
        addresses=["extern@example.com"],
    )

    entry = only_entry()
    assert (
        entry.audit_action,
        entry.group,
        entry.category,
        entry.changes["name"],
        entry.changes["users"],
    ) == (
        "updated",
        team,
        "configuration",
        ["Labor", "Labor Nord"],
        [[], [user.pk]],
    )
    assert entry.changes["addresses"][1] == ["extern@example.com"]


@pytest.mark.django_db
def test_distribution_list_create_and_delete_are_audited():
    distribution_list = inventory_services.distribution_list_create(
        name="Neu", addresses=["a@example.com"]
    )
    pk = distribution_list.pk

    inventory_services.distribution_list_delete(distribution_list=distribution_list)

    assert [
        (e.audit_action, e.object_id, e.object_label) for e in LogEntry.objects.order_by("id")
    ] == [
        ("created", pk, "Neu"),
        ("deleted", pk, "Neu"),
    ]


@pytest.mark.django_db
def test_system_address_create_update_delete_are_audited():
    system_address = inventory_services.system_address_create(
        values={
            "name": "Empfang",
            "email": "empfang@example.com",
            "language": "de",
            "description": "",
        }
    )
    inventory_services.system_address_update(
        system_address=system_address, values={"email": "empfang2@example.com"}
    )
    inventory_services.system_address_update(system_address=system_address, values={})
    pk = system_address.pk
    inventory_services.system_address_delete(system_address=system_address)

    created, updated, deleted = LogEntry.objects.order_by("id")
    assert entry_fields(updated) == audit(
        "inventory.systemaddress",
        system_address,
        "updated",
        {"email": ["empfang@example.com", "empfang2@example.com"]},
    ) | {"object_id": pk}
    assert (created.audit_action, deleted.audit_action, SystemAddressFactory is not None) == (
        "created",
        "deleted",
        True,
    )


# --- sign-ins ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_login_and_failed_login_are_security_events_with_masked_network(client):
    user = UserFactory(username="erika")

    client.post(
        reverse("login"), {"username": "erika", "password": "falsch"}, REMOTE_ADDR="192.0.2.77"
    )
    client.post(
        reverse("login"),
        {"username": "erika", "password": "correct horse battery staple"},
        REMOTE_ADDR="192.0.2.77",
    )

    failed, signed_in = LogEntry.objects.order_by("id")
    assert (
        failed.category,
        failed.level,
        failed.actor,
        failed.actor_label,
        failed.params,
        failed.details,
    ) == (
        "security",
        "warning",
        None,
        "",
        {"user": "erika"},
        {"network": "192.0.2.0/24"},
    )
    assert (signed_in.level, signed_in.actor, signed_in.rendered("en"), signed_in.details) == (
        "info",
        user,
        "erika signed in",
        {"network": "192.0.2.0/24"},
    )
    assert "falsch" not in repr(list(LogEntry.objects.values()))


@pytest.mark.django_db
def test_outbox_delete_keeps_files_until_commit(django_capture_on_commit_callbacks, media_root):
    attachment = OutboxAttachmentFactory(message__status="sent")
    path = media_root / attachment.file.name

    with django_capture_on_commit_callbacks(execute=True):
        mailbox_services.message_delete(message=attachment.message)

    assert (path.exists(), LogEntry.objects.get().audit_action) == (False, "")
