"""Deactivating an SMTP configuration (issue 18, rough edges 2 and 3): one that has sent
mail cannot be deleted, so the delete page refuses up front and offers to deactivate it;
a deactivated configuration takes no new mail, forms and pickers leave it out, the mails
already queued for it still go out, and its history stays."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from compose.selectors import usable_configurations
from mailbox.models import OutboxMessage
from mailbox.services import enqueue
from maillog.models import LogEntry
from smtpconfig import services
from smtpconfig.models import SmtpConfiguration
from tests.factories import MailTemplateFactory, OutboxMessageFactory, SmtpConfigurationFactory


def english(client):
    client.post("/i18n/setlang/", {"language": "en"})
    return client


def main_of(response) -> str:
    return response.content.decode().split("<main", 1)[1]


@pytest.fixture
def default(db):
    return SmtpConfigurationFactory(name="Hauptserver", is_default=True)


@pytest.fixture
def used(db, default):
    """A configuration that has sent a mail: it can never be deleted."""
    configuration = SmtpConfigurationFactory(name="Altserver")
    OutboxMessageFactory(smtp_configuration=configuration, status="sent")
    return configuration


# --- services --------------------------------------------------------------------------------


def test_deactivate_records_the_change_in_the_log(used):
    services.smtp_configuration_set_active(configuration=used, active=False)

    used.refresh_from_db()
    assert used.is_active is False
    entry = LogEntry.objects.filter(object_id=used.pk).latest("pk")
    assert entry.changes == {"is_active": [True, False]}

    services.smtp_configuration_set_active(configuration=used, active=True)

    used.refresh_from_db()
    assert used.is_active is True
    assert LogEntry.objects.filter(object_id=used.pk).latest("pk").changes == {
        "is_active": [False, True]
    }


def test_deactivate_default_needs_an_active_successor(default, used):
    with pytest.raises(ValidationError) as refused:
        services.smtp_configuration_set_active(configuration=default, active=False)
    assert "Choose which configuration becomes the default" in refused.value.messages[0]

    services.smtp_configuration_set_active(configuration=default, active=False, successor=used)

    default.refresh_from_db()
    used.refresh_from_db()
    assert (default.is_active, default.is_default, used.is_default) == (False, False, True)


def test_deactivate_the_only_active_default_is_refused(default, used):
    services.smtp_configuration_set_active(configuration=used, active=False)

    assert services.smtp_configuration_deactivate_refusal(default) == (
        "Hauptserver is the default and there is no other active configuration to take "
        "over: create or reactivate one first."
    )
    with pytest.raises(ValidationError):
        services.smtp_configuration_set_active(configuration=default, active=False)
    default.refresh_from_db()
    assert default.is_active is True


def test_deactivated_configuration_cannot_become_the_default(default, used):
    services.smtp_configuration_set_active(configuration=used, active=False)

    with pytest.raises(ValidationError) as refused:
        services.smtp_configuration_set_default(configuration=used)

    assert refused.value.messages == [
        "Altserver is deactivated: reactivate it before making it the default."
    ]
    assert SmtpConfiguration.objects.get(is_default=True) == default


def test_delete_refusal_names_what_refers_to_the_configuration(used):
    from actions.models import Action

    Action.objects.create(
        description="Monatsreport",
        time_of_day="07:00",
        start="2026-01-01T00:00Z",
        template=MailTemplateFactory(),
        smtp_configuration=used,
        recipients=["a@example.com"],
    )

    assert services.smtp_configuration_delete_refusal(used) == (
        "Altserver cannot be deleted: Actions: 1, Mails: 1 refer to it, and mails in the "
        "outbox keep their configuration for the record."
    )
    with pytest.raises(ValidationError):
        services.smtp_configuration_delete(configuration=used)
    assert SmtpConfiguration.objects.filter(pk=used.pk).exists()


def test_unused_configuration_has_no_delete_refusal(default):
    spare = SmtpConfigurationFactory()

    assert services.smtp_configuration_delete_refusal(spare) is None


# --- enqueue and pickers ---------------------------------------------------------------------


def test_enqueue_refuses_a_deactivated_configuration(used):
    services.smtp_configuration_set_active(configuration=used, active=False)
    used.refresh_from_db()

    with pytest.raises(ValidationError) as refused:
        enqueue(to=["a@example.com"], subject="Hallo", body_text="x", smtp_configuration=used)

    assert refused.value.message_dict["smtp_configuration"] == [
        "The SMTP configuration Altserver is deactivated; choose another one."
    ]
    assert OutboxMessage.objects.filter(subject="Hallo").count() == 0


def test_mail_queued_before_deactivation_stays_queued(used):
    queued = OutboxMessageFactory(smtp_configuration=used, status="queued")

    services.smtp_configuration_set_active(configuration=used, active=False)

    # Delivery takes it as before: deactivating stops new mail only.
    queued.refresh_from_db()
    assert (queued.status, queued.smtp_configuration_id) == ("queued", used.pk)


def test_pickers_leave_out_deactivated_configurations(admin, default, used):
    from actions.forms import ActionForm

    services.smtp_configuration_set_active(configuration=used, active=False)

    form = ActionForm(user=admin)
    assert list(form.fields["smtp_configuration"].queryset) == [default]
    assert list(usable_configurations(user=admin)) == [default]


# --- pages -----------------------------------------------------------------------------------


def test_delete_page_refuses_up_front_and_offers_deactivate(client_for, admin, used):
    client = english(client_for(admin))

    page = client.get(reverse("smtpconfig:delete", args=[used.pk]))

    main = main_of(page)
    assert "Altserver cannot be deleted" in main
    assert "This cannot be undone" not in main
    assert 'type="submit"' not in main
    assert reverse("smtpconfig:deactivate", args=[used.pk]) in main
    assert "Deactivate it instead: no new mail can use it" in main


def test_delete_post_of_a_used_configuration_is_refused(client_for, admin, used):
    client = english(client_for(admin))

    response = client.post(reverse("smtpconfig:delete", args=[used.pk]))

    assert "Altserver cannot be deleted" in main_of(response)
    assert SmtpConfiguration.objects.filter(pk=used.pk).exists()


def test_delete_page_of_a_deactivated_configuration_offers_nothing_more(client_for, admin, used):
    services.smtp_configuration_set_active(configuration=used, active=False)
    client = english(client_for(admin))

    main = main_of(client.get(reverse("smtpconfig:delete", args=[used.pk])))

    assert "It is deactivated already" in main
    assert reverse("smtpconfig:deactivate", args=[used.pk]) not in main


def test_deactivate_page_then_reactivate(client_for, admin, used):
    client = english(client_for(admin))

    ask = client.get(reverse("smtpconfig:deactivate", args=[used.pk]))
    done = client.post(reverse("smtpconfig:deactivate", args=[used.pk]), follow=True)

    assert "Mails already queued for it are still delivered" in main_of(ask)
    assert "Altserver deactivated." in done.content.decode()
    assert "Deactivated: no new mail can use this configuration." in main_of(done)
    used.refresh_from_db()
    assert used.is_active is False

    again = client.post(reverse("smtpconfig:reactivate", args=[used.pk]), follow=True)

    assert "Altserver reactivated." in again.content.decode()
    used.refresh_from_db()
    assert used.is_active is True


def test_deactivate_default_page_asks_for_successor(client_for, admin, default, used):
    client = english(client_for(admin))

    ask = client.get(reverse("smtpconfig:deactivate", args=[default.pk]))
    client.post(reverse("smtpconfig:deactivate", args=[default.pk]), {"successor": used.pk})

    assert 'name="successor"' in main_of(ask)
    default.refresh_from_db()
    used.refresh_from_db()
    assert (default.is_active, used.is_default) == (False, True)


def test_viewer_cannot_deactivate(client_for, viewer, used):
    client = client_for(viewer)

    response = client.post(reverse("smtpconfig:deactivate", args=[used.pk]))

    assert response.status_code == 403
    used.refresh_from_db()
    assert used.is_active is True


def test_list_marks_deactivated_and_offers_reactivate(client_for, admin, used):
    services.smtp_configuration_set_active(configuration=used, active=False)
    client = english(client_for(admin))

    content = client.get(reverse("smtpconfig:list")).content.decode()

    assert "deactivated" in content
    assert reverse("smtpconfig:reactivate", args=[used.pk]) in content
