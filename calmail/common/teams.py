"""The team a first run needs, and the one team a user is in.

A team is a Django group that is not a role (calmail.common.roles). Actions, templates,
distribution lists and mails belong to teams; without any team only administrators
could work, so the first run makes one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction

from calmail.common.roles import ROLE_NAMES, team_groups

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


def default_team_name() -> str:
    """The default team's name: "Standard" on a German installation, else "Default"."""
    return "Standard" if settings.LANGUAGE_CODE.lower().startswith("de") else "Default"


def first_team() -> Group | None:
    """The first team by name, if there is any."""
    return Group.objects.exclude(name__in=ROLE_NAMES).order_by("name").first()


def only_team(user: User | AnonymousUser) -> Group | None:
    """The user's team if they are in exactly one (forms preselect it), else None."""
    teams = list(team_groups(user).order_by("name")[:2])
    return teams[0] if len(teams) == 1 else None


@transaction.atomic
def ensure_default_team(*, user: User | None = None) -> tuple[Group, bool]:
    """The first team by name; if there is no team at all, create the default one
    ("Standard" or "Default", after LANGUAGE_CODE) with `user` as its member. Returns the
    team and whether it was created (accounts.services.team_ensure_default records that
    in the audit trail; demo data calls this directly).

    An existing team is returned as it is: its members are left alone."""
    team = first_team()
    if team is not None:
        return team, False
    team = Group.objects.create(name=default_team_name())
    if user is not None:
        user.groups.add(team)
    return team, True
