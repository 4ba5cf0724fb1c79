"""calmail.common.teams: the team a first run needs and a user's only team."""

import pytest
from django.contrib.auth.models import Group

from accounts.services import team_ensure_default
from calmail.common.roles import ADMINISTRATOR, POWER_USER, ROLE_NAMES
from calmail.common.teams import ensure_default_team, only_team
from maillog.models import LogEntry
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_ensure_default_team_without_any_team_creates_it_with_the_user(settings):
    settings.LANGUAGE_CODE = "de"
    user = UserFactory(username="chefin", roles=[ADMINISTRATOR])

    team, created = ensure_default_team(user=user)

    assert created
    assert list(Group.objects.exclude(name__in=ROLE_NAMES).values_list("name", flat=True)) == [
        "Standard"
    ]
    assert list(user.groups.order_by("name").values_list("name", flat=True)) == [
        "Administrator",
        "Standard",
    ]
    assert team.name == "Standard"


def test_ensure_default_team_without_user_creates_an_empty_team(settings):
    settings.LANGUAGE_CODE = "en"

    team, created = ensure_default_team()

    assert (team.name, team.user_set.count(), created) == ("Default", 0, True)


def test_team_ensure_default_records_a_new_team_in_the_audit_trail(settings):
    settings.LANGUAGE_CODE = "en"

    team, created = team_ensure_default()
    again, created_again = team_ensure_default()

    assert (created, created_again, again) == (True, False, team)
    assert LogEntry.objects.get().changes == {"name": [None, "Default"], "members": [None, []]}


def test_ensure_default_team_returns_the_first_team_by_name_and_creates_nothing():
    Group.objects.create(name="Zentrallabor")
    first = Group.objects.create(name="Außenstelle")
    user = UserFactory(username="neu", roles=[POWER_USER])

    team, created = ensure_default_team(user=user)

    assert (team, created) == (first, False)
    assert Group.objects.exclude(name__in=ROLE_NAMES).count() == 2
    assert list(user.groups.values_list("name", flat=True)) == [POWER_USER]
    assert LogEntry.objects.exists() is False


def test_only_team_is_the_single_team_and_ignores_roles():
    alone = UserFactory(username="allein", roles=[POWER_USER])
    alone.groups.add(Group.objects.create(name="Labor Nord"))
    busy = UserFactory(username="doppelt", roles=[POWER_USER])
    busy.groups.add(Group.objects.get(name="Labor Nord"), Group.objects.create(name="Labor Süd"))
    none = UserFactory(username="ohne", roles=[POWER_USER])

    assert [only_team(u) for u in (alone, busy, none)] == [
        Group.objects.get(name="Labor Nord"),
        None,
        None,
    ]
