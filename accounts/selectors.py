"""Reads of users and teams: the list pages, what still refers to a user or a team, and
the administrators that must remain."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Exists,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from accounts.models import Team
from actions.models import Action
from calmail.common.queries import related_count
from calmail.common.roles import ADMINISTRATOR, POWER_USER, VIEWER, is_administrator
from compose.models import Draft
from inventory.models import DistributionList, UserProfile, default_language
from mailbox.models import OutboxMessage
from maillog.models import LogEntry
from templates_app.models import MailTemplate

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, Group, User

VIEW_USERS = "auth.view_user"
ADD_USER = "auth.add_user"
CHANGE_USER = "auth.change_user"
DELETE_USER = "auth.delete_user"
VIEW_TEAMS = "accounts.view_team"
ADD_TEAM = "accounts.add_team"
CHANGE_TEAM = "accounts.change_team"
DELETE_TEAM = "accounts.delete_team"

# Teams are counted by their mails of the last days on the list page.
RECENT_MAIL_DAYS = 30


def may_manage_people(user: User | AnonymousUser, permission: str) -> bool:
    """Users & teams are for administrators only: the permission alone is not enough (it
    could be handed to another role in Django admin, and whoever manages users can make
    themselves administrator)."""
    return user.is_authenticated and user.has_perm(permission) and is_administrator(user)


def _in_role(role: str) -> Exists:
    return Exists(
        get_user_model().groups.through.objects.filter(user=OuterRef("pk"), group__name=role)
    )


def with_role(users: QuerySet) -> QuerySet:
    """Annotates `role`: the role name, "" for none; a superuser is an administrator."""
    return users.annotate(
        role=Case(
            When(Q(is_superuser=True) | _in_role(ADMINISTRATOR), then=Value(ADMINISTRATOR)),
            When(_in_role(POWER_USER), then=Value(POWER_USER)),
            When(_in_role(VIEWER), then=Value(VIEWER)),
            default=Value(""),
            output_field=CharField(),
        )
    )


def with_sign_in_lock(users: QuerySet) -> QuerySet:
    """Annotates `sign_in_locked`: django-axes refuses this user name's sign-ins right now
    (enough failures within the cool-off, summed over every address they came from)."""
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    failures = (
        AccessAttempt.objects.filter(username=OuterRef("username"), attempt_time__gte=since)
        .order_by()
        .values("username")
        .annotate(total=Sum("failures_since_start"))
        .values("total")
    )
    return users.alias(
        sign_in_failures=Coalesce(Subquery(failures, output_field=IntegerField()), 0)
    ).annotate(
        sign_in_locked=Case(
            When(sign_in_failures__gte=settings.AXES_FAILURE_LIMIT, then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        )
    )


def user_list() -> QuerySet:
    """Every user with `role`, `language` (the profile's, else the installation's),
    `sign_in_locked` and `team_list` (their teams by name, prefetched)."""
    language = UserProfile.objects.filter(user=OuterRef("pk")).values("language")[:1]
    return (
        with_sign_in_lock(with_role(get_user_model().objects.all()))
        .annotate(
            language=Coalesce(
                Subquery(language, output_field=CharField()), Value(default_language())
            )
        )
        .prefetch_related(
            Prefetch("groups", queryset=Team.objects.order_by("name"), to_attr="team_list")
        )
    )


def active_administrators() -> QuerySet:
    """Users who can sign in and administer calmail."""
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name=ADMINISTRATOR))
        .distinct()
    )


def team_list() -> QuerySet[Team]:
    """Every team with what belongs to it: member_count, action_count, template_count,
    list_count, and recent_mail_count (mails of the last RECENT_MAIL_DAYS days)."""
    since = timezone.now() - datetime.timedelta(days=RECENT_MAIL_DAYS)
    return Team.objects.annotate(
        member_count=related_count(get_user_model().groups.through, "group"),
        action_count=related_count(Action, "group"),
        template_count=related_count(MailTemplate, "owner_group"),
        list_count=related_count(DistributionList, "owner_group"),
        recent_mail_count=related_count(OutboxMessage, "owner_group", created_at__gte=since),
    )


def team_members(team: Group) -> QuerySet[User]:
    return get_user_model().objects.filter(groups=team).order_by("username")


@dataclass(frozen=True)
class Dependent:
    """Something that still belongs to a team or refers to a user: how many, and where
    to see them."""

    label: str | Promise
    count: int
    url: str = ""

    def __str__(self) -> str:
        return f"{self.label}: {self.count}"


def _url(name: str, **query: str | int) -> str:
    return f"{reverse(name)}?{urlencode(query)}"


def team_dependents(team: Group) -> list[Dependent]:
    """What keeps a team from being deleted: its actions, templates, distribution lists and
    mails (their visibility hangs on the team). Members do not: they just leave it."""
    found = [
        Dependent(
            _("Actions"),
            Action.objects.filter(group=team).count(),
            _url("actions:list", group=team.pk),
        ),
        Dependent(
            _("Templates"),
            MailTemplate.objects.filter(owner_group=team).count(),
            _url("templates_app:list", owner_group=team.pk),
        ),
        Dependent(
            _("Distribution lists"),
            DistributionList.objects.filter(owner_group=team).count(),
            _url("inventory:distributionlist_list", owner_group=team.pk),
        ),
        Dependent(
            _("Mails in the outbox"),
            OutboxMessage.objects.filter(owner_group=team).count(),
            _url("mailbox:list", owner_group=team.pk),
        ),
        Dependent(_("Compose drafts"), Draft.objects.filter(owner_group=team).count()),
    ]
    return [dependent for dependent in found if dependent.count]


def user_references(user: User) -> list[Dependent]:
    """What a user has left behind that must keep pointing at them: mails they created,
    log entries they caused (audit trail, sign-ins), drafts. Such a user is deactivated,
    never deleted."""
    found = [
        Dependent(
            _("Mails created"),
            OutboxMessage.objects.filter(created_by=user).count(),
            _url("mailbox:list", created_by=user.pk),
        ),
        Dependent(
            _("Log entries"),
            LogEntry.objects.filter(actor=user).count(),
            _url("maillog:list", actor=user.pk),
        ),
        Dependent(_("Compose drafts"), Draft.objects.filter(owner=user).count()),
    ]
    return [dependent for dependent in found if dependent.count]


def stored_language(user: User) -> str:
    """The language in the user's profile, "" if they never had one (then the browser's
    or the installation's language applies)."""
    return UserProfile.objects.filter(user=user).values_list("language", flat=True).first() or ""
