"""Delete pages across the sections (issue 18, rough edge 2): a refusal is decided on GET
and shown up front, without the question "…delete? This cannot be undone." and without
the button; where there is a way out (deactivate), the page offers it."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from calmail.common.roles import POWER_USER
from tests.factories import (
    MailTemplateFactory,
    OutboxMessageFactory,
    SmtpConfigurationFactory,
    UserFactory,
)


def english(client):
    client.post("/i18n/setlang/", {"language": "en"})
    return client


def main_of(response) -> str:
    return response.content.decode().split("<main", 1)[1]


def assert_refused_up_front(main: str) -> None:
    assert 'data-testid="refusal"' in main
    assert "This cannot be undone" not in main
    assert 'type="submit"' not in main


@pytest.mark.django_db
def test_template_in_use_is_refused_up_front(client_for, admin):
    from actions.models import Action

    template = MailTemplateFactory(name="Erinnerung")
    Action.objects.create(
        description="Monatsreport",
        time_of_day="07:00",
        start="2026-01-01T00:00Z",
        template=template,
        smtp_configuration=SmtpConfigurationFactory(),
        recipients=["a@example.com"],
    )

    main = main_of(
        english(client_for(admin)).get(reverse("templates_app:delete", args=[template.pk]))
    )

    assert_refused_up_front(main)
    assert "Monatsreport" in main


@pytest.mark.django_db
def test_team_with_dependents_is_refused_up_front(client_for, admin):
    team = Group.objects.create(name="Labor")
    MailTemplateFactory(owner_group=team)

    main = main_of(english(client_for(admin)).get(reverse("accounts:team_delete", args=[team.pk])))

    assert_refused_up_front(main)
    assert 'data-testid="refusal-links"' in main


@pytest.mark.django_db
def test_user_with_traces_is_refused_up_front_and_offered_deactivate(client_for, admin):
    member = UserFactory(username="bernd")
    OutboxMessageFactory(created_by=member)

    main = main_of(
        english(client_for(admin)).get(reverse("accounts:user_delete", args=[member.pk]))
    )

    assert_refused_up_front(main)
    assert f'href="{reverse("accounts:user_deactivate", args=[member.pk])}"' in main


@pytest.mark.django_db
def test_mail_being_sent_is_refused_up_front(client_for, admin):
    message = OutboxMessageFactory(status="sending")

    main = main_of(english(client_for(admin)).get(reverse("mailbox:delete", args=[message.pk])))

    assert_refused_up_front(main)
    assert "being sent right now" in main


@pytest.mark.django_db
def test_deletable_objects_still_get_question_and_button(client_for, admin):
    SmtpConfigurationFactory(is_default=True)
    spare = SmtpConfigurationFactory(name="Ersatz")

    main = main_of(english(client_for(admin)).get(reverse("smtpconfig:delete", args=[spare.pk])))

    assert "Delete the SMTP configuration Ersatz? This cannot be undone." in main
    assert 'type="submit"' in main


# --- links follow permissions (rough edge 14) -------------------------------------------------


@pytest.fixture
def team_action(db):
    from actions.models import Action

    team = Group.objects.create(name="Labor")
    action = Action.objects.create(
        description="Erster Montag",
        time_of_day="07:00",
        start="2026-01-01T00:00Z",
        group=team,
        template=MailTemplateFactory(owner_group=team),
        smtp_configuration=SmtpConfigurationFactory(),
        recipients=["a@example.com"],
    )
    return team, action


def test_viewer_sees_the_action_linked_to_its_runs_not_the_edit_page(
    client_for, viewer, team_action
):
    team, action = team_action
    viewer.groups.add(team)

    content = client_for(viewer).get(reverse("actions:list")).content.decode()

    assert reverse("actions:update", args=[action.pk]) not in content
    assert f'<a href="{reverse("actions:runs", args=[action.pk])}">Erster Montag</a>' in content


def test_power_user_of_the_team_gets_the_edit_link(client_for, team_action):
    team, action = team_action
    power = UserFactory(username="paula", roles=[POWER_USER])
    power.groups.add(team)

    content = client_for(power).get(reverse("actions:list")).content.decode()

    assert f'<a href="{reverse("actions:update", args=[action.pk])}">Erster Montag</a>' in content


def test_admin_gets_the_edit_link(client_for, admin, team_action):
    _team, action = team_action

    content = client_for(admin).get(reverse("actions:list")).content.decode()

    assert f'<a href="{reverse("actions:update", args=[action.pk])}">Erster Montag</a>' in content


@pytest.mark.django_db
def test_log_links_to_a_template_only_where_the_reader_may_go(viewer, outsider):
    from django.contrib.contenttypes.models import ContentType

    from maillog.links import object_url
    from templates_app.models import MailTemplate

    template = MailTemplateFactory()
    content_type = ContentType.objects.get_for_model(MailTemplate)

    assert object_url(content_type, template.pk, user=viewer) == reverse(
        "templates_app:preview", args=[template.pk]
    )
    assert object_url(content_type, template.pk, user=outsider) is None
