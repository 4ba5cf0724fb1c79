import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from accounts import services
from accounts.models import Team
from accounts.selectors import active_administrators, team_list, user_list
from calmail.common.roles import ADMINISTRATOR, POWER_USER, VIEWER
from inventory.models import UserProfile
from mailbox.models import OutboxMessage, Source
from maillog.models import AuditAction, Category, LogEntry
from tests.accounts.conftest import make_action, role_names, team_names
from tests.factories import (
    DistributionListFactory,
    MailTemplateFactory,
    OutboxMessageFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SECRET = "Geheim-Passwort-4711!"


def audit_entries(user_or_team):
    return list(
        LogEntry.objects.filter(category=Category.USERS, object_id=user_or_team.pk).order_by("id")
    )


def entries_text() -> str:
    """Everything the Log stores, as one text: a password must never be in it."""
    return json.dumps(
        list(LogEntry.objects.values("message", "params", "details", "changes", "search_text")),
        ensure_ascii=False,
    )


# --- users ---------------------------------------------------------------------------------


def test_user_create_gives_exactly_one_role_teams_language_and_audit(team, other_team):
    user = services.user_create(
        username="paula",
        email="Paula.Peters@Example.com",
        first_name="Paula",
        last_name="Peters",
        role=POWER_USER,
        teams=[team, other_team],
        language="en",
    )

    user.refresh_from_db()
    assert role_names(user) == {POWER_USER}
    assert team_names(user) == ["Labor Nord", "Labor Süd"]
    assert UserProfile.objects.get(user=user).language == "en"
    assert user.email == "Paula.Peters@example.com"
    assert not user.has_usable_password()
    [entry] = audit_entries(user)
    assert entry.audit_action == AuditAction.CREATED
    assert entry.changes["role"] == [None, POWER_USER]
    assert entry.changes["teams"] == [None, ["Labor Nord", "Labor Süd"]]
    assert entry.group_id is None


def test_user_create_with_password_records_only_that_it_was_set():
    user = services.user_create(username="paula", role=VIEWER, password=SECRET)

    assert user.check_password(SECRET)
    entries = audit_entries(user)
    assert [entry.audit_action for entry in entries] == [AuditAction.CREATED, AuditAction.UPDATED]
    assert entries[1].changes == {"password": "changed"}
    assert SECRET not in entries_text()


def test_user_create_refuses_a_weak_password_and_a_taken_email():
    UserFactory(username="erika", email="erika@example.com")

    with pytest.raises(ValidationError) as weak:
        services.user_create(username="paula", role=VIEWER, password="123")
    with pytest.raises(ValidationError) as taken:
        services.user_create(username="paula", role=VIEWER, email="ERIKA@example.com")

    assert "too short" in " ".join(weak.value.messages)
    assert taken.value.message_dict == {"email": ["Another user already has this e-mail address."]}
    assert not get_user_model().objects.filter(username="paula").exists()


def test_user_create_refuses_an_unknown_role():
    with pytest.raises(ValidationError) as error:
        services.user_create(username="paula", role="Superhero")

    assert error.value.message_dict == {"role": ["Choose one of the three roles."]}


def test_user_update_changes_role_teams_language_with_field_diffs(member, team, other_team):
    services.user_update(
        user=member,
        username="paula",
        email="paula@example.com",
        first_name="Paula",
        last_name="Peters-Schmidt",
        role=VIEWER,
        teams=[other_team],
        language="en",
    )

    member.refresh_from_db()
    assert role_names(member) == {VIEWER}
    assert team_names(member) == ["Labor Süd"]
    assert member.profile.language == "en"
    entry = audit_entries(member)[-1]
    assert entry.audit_action == AuditAction.UPDATED
    assert entry.changes == {
        "last_name": ["Peters", "Peters-Schmidt"],
        "role": [POWER_USER, VIEWER],
        "teams": [["Labor Nord"], ["Labor Süd"]],
        "language": ["de", "en"],
    }


def test_user_update_cleans_up_several_role_groups_into_one(db):
    user = UserFactory(username="both", roles=[VIEWER, POWER_USER])

    services.user_update(user=user, username="both", role=VIEWER, language="de")

    assert role_names(user) == {VIEWER}


def test_demoting_a_superuser_ends_superuser_rights(second_admin):
    boss = UserFactory(username="boss", roles=[ADMINISTRATOR])
    boss.is_superuser = boss.is_staff = True
    boss.save()

    services.user_update(user=boss, username="boss", role=POWER_USER, language="de")

    boss.refresh_from_db()
    assert (boss.is_superuser, boss.is_staff) == (False, False)
    assert role_names(boss) == {POWER_USER}
    assert not boss.has_perm("auth.change_user")


def test_the_last_administrator_keeps_the_role(admin):
    with pytest.raises(ValidationError) as error:
        services.user_update(user=admin, username=admin.username, role=POWER_USER, language="de")

    assert error.value.code == "last_administrator"
    assert role_names(admin) == {ADMINISTRATOR}


def test_the_last_administrator_cannot_be_deactivated(admin):
    with pytest.raises(ValidationError):
        services.user_set_active(user=admin, active=False)
    with pytest.raises(ValidationError):
        services.user_update(
            user=admin, username=admin.username, role=ADMINISTRATOR, language="de", is_active=False
        )

    admin.refresh_from_db()
    assert admin.is_active


def test_an_administrator_may_step_down_while_another_remains(admin, second_admin):
    services.user_update(user=admin, username=admin.username, role=VIEWER, language="de")

    assert list(active_administrators()) == [second_admin]
    with pytest.raises(ValidationError):
        services.user_set_active(user=second_admin, active=False)


def test_an_inactive_administrator_does_not_count(admin, second_admin):
    services.user_set_active(user=second_admin, active=False, acting_user=admin)

    with pytest.raises(ValidationError):
        services.user_update(user=admin, username=admin.username, role=VIEWER, language="de")


def test_nobody_deactivates_themselves(admin, second_admin):
    with pytest.raises(ValidationError) as error:
        services.user_set_active(user=admin, active=False, acting_user=admin)

    assert error.value.messages == ["You cannot deactivate yourself: another administrator can."]
    admin.refresh_from_db()
    assert admin.is_active


def test_deactivate_and_reactivate_are_audited(admin, member):
    assert services.user_set_active(user=member, active=False, acting_user=admin) is True
    assert services.user_set_active(user=member, active=False, acting_user=admin) is False
    services.user_set_active(user=member, active=True)

    member.refresh_from_db()
    assert member.is_active
    assert [entry.changes for entry in audit_entries(member)] == [
        {"is_active": [True, False]},
        {"is_active": [False, True]},
    ]


def test_user_set_password_validates_and_never_logs_it(member):
    with pytest.raises(ValidationError):
        services.user_set_password(user=member, password="paula")

    services.user_set_password(user=member, password=SECRET)

    member.refresh_from_db()
    assert member.check_password(SECRET)
    assert audit_entries(member)[-1].changes == {"password": "changed"}
    assert SECRET not in entries_text()


def test_user_without_traces_can_be_deleted(admin):
    user = UserFactory(username="temp")

    services.user_delete(user=user, acting_user=admin)

    assert not get_user_model().objects.filter(username="temp").exists()
    entry = LogEntry.objects.get(category=Category.USERS, audit_action=AuditAction.DELETED)
    assert entry.object_label == "temp"


@pytest.mark.parametrize("trace", ["mail", "log"])
def test_user_with_traces_is_kept_for_the_record(admin, trace):
    user = UserFactory(username="ernst")
    if trace == "mail":
        OutboxMessageFactory(created_by=user)
        expected = "Mails created: 1"
    else:
        LogEntry.objects.create(category=Category.SECURITY, message="x", actor=user)
        expected = "Log entries: 1"

    refusal = services.user_delete_refusal(user=user)
    with pytest.raises(ValidationError) as error:
        services.user_delete(user=user, acting_user=admin)

    assert refusal == (
        f"ernst has {expected} and is kept for the record: deactivate the user instead."
    )
    assert error.value.messages == [refusal]
    assert get_user_model().objects.filter(username="ernst").exists()


def test_nobody_deletes_themselves(admin):
    with pytest.raises(ValidationError) as error:
        services.user_delete(user=admin, acting_user=admin)

    assert error.value.messages == ["You cannot delete yourself."]


def test_user_list_annotates_role_language_and_teams(admin, member, team):
    viewer = UserFactory(username="vera", roles=[VIEWER])
    UserProfile.objects.create(user=viewer, language="en")
    nobody = UserFactory(username="nobody")

    rows = {user.username: user for user in user_list()}

    assert rows["admin-role"].role == ADMINISTRATOR
    assert rows["paula"].role == POWER_USER
    assert [t.name for t in rows["paula"].team_list] == ["Labor Nord"]
    assert (rows["vera"].role, rows["vera"].language) == (VIEWER, "en")
    assert (rows[nobody.username].role, rows[nobody.username].language) == ("", "de")


# --- set-password link -----------------------------------------------------------------------


def test_password_link_goes_through_the_outbox_in_the_users_language(admin, member, default_smtp):
    UserProfile.objects.create(user=member, language="en")

    message = services.user_send_password_link(user=member, created_by=admin)

    assert message.to == [member.email]
    assert message.smtp_configuration == default_smtp
    assert message.source == Source.SYSTEM
    assert message.created_by == admin
    assert message.owner_group is None
    assert message.subject == "Set your calmail password"
    [link] = re.findall(r"http://\S+/accounts/password/set/\S+/", message.body_text)
    assert link in message.body_html
    entry = LogEntry.objects.get(category=Category.USERS, object_id=member.pk)
    assert entry.rendered("en") == f"Set-password link for paula sent to {member.email}"
    # The link is a credential: it is in the mail, never in the Log.
    assert link.rsplit("/", 2)[-2] not in entries_text()


def test_password_link_in_german_for_a_german_user(member, default_smtp):
    message = services.user_send_password_link(user=member)

    assert message.subject == "Ihr calmail-Passwort festlegen"
    assert message.body_text.startswith("Hallo Paula Peters,")


def test_password_link_needs_an_address_an_active_user_and_a_configuration(member):
    nameless = UserFactory(username="ohne", email="")

    with pytest.raises(ValidationError) as no_email:
        services.user_send_password_link(user=nameless)
    with pytest.raises(ValidationError) as no_smtp:
        services.user_send_password_link(user=member)

    assert no_email.value.messages == ["ohne has no e-mail address to send the link to."]
    assert no_smtp.value.message_dict == {
        "smtp_configuration": ["There is no SMTP configuration to send through."]
    }
    assert OutboxMessage.objects.count() == 0


# --- teams ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Administrator",
        "administrator",
        "Power user",
        "power-user",
        "POWERUSER",
        "Viewer",
        "Betrachter",
        "Power-User",
    ],
)
def test_a_team_cannot_be_named_like_a_role(name):
    with pytest.raises(ValidationError) as error:
        services.team_create(name=name)

    assert error.value.message_dict == {
        "name": [f"“{name.strip()}” is the name of a role; a team needs another name."]
    }
    assert not Team.objects.exists()


def test_team_names_are_unique_ignoring_case_and_spaces(team):
    with pytest.raises(ValidationError) as error:
        services.team_create(name="  labor   NORD ")

    assert error.value.message_dict == {"name": ["A team with this name already exists."]}


def test_team_create_with_members_is_audited(member):
    team = services.team_create(name="  Labor   West ", members=[member])

    assert team.name == "Labor West"
    assert team_names(member) == ["Labor Nord", "Labor West"]
    [entry] = audit_entries(team)
    assert entry.changes == {"name": [None, "Labor West"], "members": [None, ["paula"]]}


def test_team_update_renames_and_sets_members(team, member):
    other = UserFactory(username="otto")

    services.team_update(team=team, name="Labor Nordost", members=[other])

    team.refresh_from_db()
    assert team.name == "Labor Nordost"
    assert list(team.user_set.values_list("username", flat=True)) == ["otto"]
    assert audit_entries(team)[-1].changes == {
        "name": ["Labor Nord", "Labor Nordost"],
        "members": [["paula"], ["otto"]],
    }


def test_team_delete_refused_while_something_belongs_to_it(team):
    make_action(group=team, template=MailTemplateFactory(owner_group=team))
    DistributionListFactory(owner_group=team)
    OutboxMessageFactory(owner_group=team)

    with pytest.raises(ValidationError) as error:
        services.team_delete(team=team)

    assert error.value.messages == [
        "Labor Nord still has Actions: 1, Templates: 1, Distribution lists: 1, "
        "Mails in the outbox: 1: move or delete them first, or rename the team."
    ]
    assert Group.objects.filter(pk=team.pk).exists()


def test_team_delete_when_empty_lets_members_leave(team, member):
    services.team_delete(team=team)

    assert not Group.objects.filter(pk=team.pk).exists()
    assert team_names(member) == []
    assert role_names(member) == {POWER_USER}
    entry = LogEntry.objects.get(category=Category.USERS, audit_action=AuditAction.DELETED)
    assert entry.changes == {"name": ["Labor Nord", None], "members": [["paula"], None]}


def test_roles_are_never_teams(team):
    assert list(Team.objects.values_list("name", flat=True)) == ["Labor Nord"]
    assert [row.name for row in team_list()] == ["Labor Nord"]


def test_team_list_counts_what_belongs_to_each_team(team, member, other_team):
    make_action(group=team)
    OutboxMessageFactory(owner_group=team)

    rows = {row.name: row for row in team_list()}

    nord = rows["Labor Nord"]
    assert (nord.member_count, nord.action_count, nord.recent_mail_count) == (1, 1, 1)
    assert rows["Labor Süd"].member_count == 0
