"""Writes to users and teams. Every change is in the Log's audit trail (never a password),
and one rule holds after every change: at least one active administrator remains."""

import datetime
from collections.abc import Iterable

from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import Group, User
from django.contrib.auth.tokens import default_token_generator
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.encoding import force_bytes
from django.utils.html import format_html
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from accounts.models import Team
from accounts.selectors import active_administrators, team_dependents, user_references
from calmail.common.roles import ADMINISTRATOR, ROLE_NAMES, is_role_name, role_of
from calmail.common.teams import ensure_default_team
from inventory.models import Language
from inventory.services import profile_for
from mailbox.models import AddressType, OutboxMessage, Source
from mailbox.services import enqueue
from maillog.models import AuditAction, Category, Level, LogEntry
from maillog.services import CHANGED, diff_fields, log_audit, log_event

USER_FIELDS = ("username", "first_name", "last_name", "email", "is_active")


# --- users -------------------------------------------------------------------------------


def _user_state(user: User) -> dict:
    """What the audit trail compares before and after a change of a user."""
    return {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": user.is_active,
        "role": role_of(user),
        "teams": sorted(user.groups.exclude(name__in=ROLE_NAMES).values_list("name", flat=True)),
        "language": profile_for(user).language,
    }


def _audit_user(user: User, action: str, before: dict) -> None:
    changes = diff_fields(before, _user_state(user) if action != AuditAction.DELETED else {})
    if action == AuditAction.UPDATED and not changes:
        return
    log_audit(action=action, obj=user, category=Category.USERS, changes=changes, group=None)


def _lock_administrators() -> None:
    """Serialise every change that could remove an administrator: two administrators
    demoting each other at the same moment must not leave none."""
    Group.objects.select_for_update().filter(name=ADMINISTRATOR).first()


def _is_active_administrator(user: User) -> bool:
    return active_administrators().filter(pk=user.pk).exists()


def _ensure_an_administrator_remains(*, was_administrator: bool) -> None:
    """Refuse a change that took away the last active administrator. (A database
    without any, such as a new one before the first administrator, is not blocked.)"""
    if was_administrator and not active_administrators().exists():
        raise ValidationError(
            _(
                "calmail needs at least one active administrator: make another user "
                "administrator first."
            ),
            code="last_administrator",
        )


def _check_email(email: str, *, exclude_pk: int | None = None) -> None:
    if not email:
        return
    others = get_user_model().objects.filter(email__iexact=email)
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    if others.exists():
        raise ValidationError(
            {"email": _("Another user already has this e-mail address.")}, code="email_taken"
        )


def _check_role(role: str) -> None:
    if role not in ROLE_NAMES:
        raise ValidationError({"role": _("Choose one of the three roles.")}, code="role")


def _check_language(language: str) -> None:
    if language not in Language.values:
        raise ValidationError({"language": _("Choose a language calmail speaks.")}, code="language")


def _apply_role(user: User, role: str) -> None:
    """Exactly one role group. Leaving the administrator role also ends superuser and
    Django admin rights, or the role would not say what the user may do."""
    roles = list(Group.objects.filter(name__in=ROLE_NAMES))
    user.groups.remove(*[group for group in roles if group.name != role])
    user.groups.add(next(group for group in roles if group.name == role))
    if role != ADMINISTRATOR and (user.is_superuser or user.is_staff):
        user.is_superuser = user.is_staff = False
        user.save(update_fields=["is_superuser", "is_staff"])


def _apply_teams(user: User, teams: Iterable[Group]) -> None:
    wanted = {team.pk for team in teams}
    current = set(Team.objects.filter(user=user).values_list("pk", flat=True))
    if wanted - current:
        user.groups.add(*Team.objects.filter(pk__in=wanted - current))
    if current - wanted:
        user.groups.remove(*Team.objects.filter(pk__in=current - wanted))


def _clean_user(user: User) -> None:
    user.username = user.username.strip()
    user.email = get_user_model().objects.normalize_email(user.email.strip())
    user.full_clean(exclude=["password", "last_login"])


@transaction.atomic
def user_create(
    *,
    username: str,
    role: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    teams: Iterable[Group] = (),
    language: str | None = None,
    is_active: bool = True,
    password: str | None = None,
) -> User:
    """A new user with exactly one role. Without a password the user cannot sign in
    until they set one through a link (user_send_password_link) or an administrator
    sets it."""
    _check_role(role)
    language = language or settings.LANGUAGE_CODE[:2]
    _check_language(language)
    user = get_user_model()(
        username=username,
        email=email,
        first_name=first_name,
        last_name=last_name,
        is_active=is_active,
    )
    _clean_user(user)
    _check_email(user.email)
    if password:
        password_validation.validate_password(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    _apply_role(user, role)
    _apply_teams(user, teams)
    profile = profile_for(user)
    profile.language = language
    profile.save(update_fields=["language"])
    _audit_user(user, AuditAction.CREATED, {})
    if password:
        log_audit(
            action=AuditAction.UPDATED,
            obj=user,
            category=Category.USERS,
            changes={"password": CHANGED},
        )
    return user


@transaction.atomic
def user_update(
    *,
    user: User,
    username: str,
    role: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    teams: Iterable[Group] = (),
    language: str,
    is_active: bool = True,
) -> dict:
    """Change a user's details, role, teams, language and active state. Returns the
    changes as the audit trail records them."""
    _check_role(role)
    _check_language(language)
    _lock_administrators()
    user = get_user_model().objects.get(pk=user.pk)
    was_administrator = _is_active_administrator(user)
    before = _user_state(user)
    user.username, user.email = username, email
    user.first_name, user.last_name, user.is_active = first_name, last_name, is_active
    _clean_user(user)
    _check_email(user.email, exclude_pk=user.pk)
    user.save(update_fields=[*USER_FIELDS])
    _apply_role(user, role)
    _apply_teams(user, teams)
    profile = profile_for(user)
    if profile.language != language:
        profile.language = language
        profile.save(update_fields=["language"])
    _ensure_an_administrator_remains(was_administrator=was_administrator)
    after = _user_state(user)
    _audit_user(user, AuditAction.UPDATED, before)
    return diff_fields(before, after)


def user_deactivate_refusal(*, user: User, acting_user: User | None = None) -> str | None:
    if acting_user is not None and acting_user.pk == user.pk:
        return _("You cannot deactivate yourself: another administrator can.")
    return None


@transaction.atomic
def user_set_active(*, user: User, active: bool, acting_user: User | None = None) -> bool:
    """Deactivate (cannot sign in; everything they did stays) or reactivate a user.
    Returns whether anything changed."""
    _lock_administrators()
    user = get_user_model().objects.get(pk=user.pk)
    if user.is_active == active:
        return False
    refusal = None if active else user_deactivate_refusal(user=user, acting_user=acting_user)
    if refusal:
        raise ValidationError(refusal, code="self")
    was_administrator = _is_active_administrator(user)
    before = _user_state(user)
    user.is_active = active
    user.save(update_fields=["is_active"])
    _ensure_an_administrator_remains(was_administrator=was_administrator)
    _audit_user(user, AuditAction.UPDATED, before)
    return True


@transaction.atomic
def user_set_password(*, user: User, password: str) -> None:
    """Set a password chosen by an administrator (Django's validators apply). The audit
    trail records only that it changed."""
    password_validation.validate_password(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    log_audit(
        action=AuditAction.UPDATED,
        obj=user,
        category=Category.USERS,
        changes={"password": CHANGED},
    )


def user_unlock(*, user: User) -> int:
    """Lift django-axes' sign-in lock of this user name (all its failed attempts, from
    every address). Returns how many attempt records were cleared."""
    cleared = axes_reset(username=user.get_username())
    log_event(
        category=Category.USERS,
        level=Level.INFO,
        message=gettext_noop("Sign-in of %(user)s unlocked"),
        params={"user": user.get_username()},
        obj=user,
        details={"cleared_attempts": cleared},
    )
    return cleared


def password_link(user: User) -> str:
    """The absolute link of Django's password reset flow for this user: valid until the
    password changes or PASSWORD_RESET_TIMEOUT passes, whichever comes first."""
    path = reverse(
        "password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return settings.CALMAIL_BASE_URL.rstrip("/") + path


def _link_validity() -> str:
    hours = settings.PASSWORD_RESET_TIMEOUT // 3600
    if hours % 24 == 0:
        days = hours // 24
        return translation.ngettext("%(count)d day", "%(count)d days", days) % {"count": days}
    return translation.ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours}


FORGOTTEN_MESSAGE = gettext_noop("Forgotten password: link for %(user)s sent to %(email)s")
# The login page's form is open to anyone: one link per user in this many minutes, so
# nobody can flood a user's mailbox (or the outbox) by pressing the button.
FORGOTTEN_LINK_INTERVAL_MINUTES = 5


def forgotten_link_sent_recently(user: User) -> bool:
    since = timezone.now() - datetime.timedelta(minutes=FORGOTTEN_LINK_INTERVAL_MINUTES)
    return LogEntry.objects.filter(
        category=Category.USERS,
        message=FORGOTTEN_MESSAGE,
        content_type=ContentType.objects.get_for_model(user),
        object_id=user.pk,
        time__gte=since,
    ).exists()


@transaction.atomic
def user_send_password_link(
    *, user: User, created_by: User | None = None, reason: str = "admin"
) -> OutboxMessage:
    """Mail the user a link to set their password, through the outbox and the default
    SMTP configuration like every other mail, in the user's language. `reason` is
    "admin" (an administrator sent it) or "forgotten" (the login page's form)."""
    if not user.email:
        raise ValidationError(
            _("%(user)s has no e-mail address to send the link to.")
            % {"user": user.get_username()},
            code="no_email",
        )
    if not user.is_active:
        raise ValidationError(
            _("%(user)s is deactivated: reactivate the user first.")
            % {"user": user.get_username()},
            code="inactive",
        )
    link = password_link(user)
    with translation.override(profile_for(user).language):
        name = user.get_full_name() or user.get_username()
        subject = _("Set your calmail password")
        lines = [
            _("Hello %(name)s,") % {"name": name},
            _("your calmail user name is %(username)s. Set your password here:")
            % {"username": user.get_username()},
            _(
                "The link works once and for %(validity)s. If you did not expect this mail, ignore it."
            )
            % {"validity": _link_validity()},
        ]
        body_text = f"{lines[0]}\n\n{lines[1]}\n{link}\n\n{lines[2]}\n"
        body_html = format_html(
            '<p>{}</p><p>{}<br><a href="{}">{}</a></p><p>{}</p>',
            lines[0],
            lines[1],
            link,
            _("Set password"),
            lines[2],
        )
    message = enqueue(
        to=[user.email],
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        source=Source.SYSTEM,
        address_type=AddressType.USER,
        recipient_owner=name,
        created_by=created_by,
    )
    log_event(
        category=Category.USERS,
        level=Level.INFO,
        message=(
            gettext_noop("Set-password link for %(user)s sent to %(email)s")
            if reason == "admin"
            else FORGOTTEN_MESSAGE
        ),
        params={"user": user.get_username(), "email": user.email},
        obj=user,
        # The link is a credential: only where the mail went, never the link.
        details={"mail_id": message.pk},
    )
    return message


def user_delete_refusal(*, user: User, acting_user: User | None = None) -> str | None:
    """Why the user cannot be deleted (None if they can): whoever left traces in mails
    or the Log stays, deactivated, so that the record keeps naming them."""
    if acting_user is not None and acting_user.pk == user.pk:
        return _("You cannot delete yourself.")
    references = user_references(user)
    if references:
        return _(
            "%(user)s has %(what)s and is kept for the record: deactivate the user instead."
        ) % {
            "user": user.get_username(),
            "what": ", ".join(str(reference) for reference in references),
        }
    return None


@transaction.atomic
def user_delete(*, user: User, acting_user: User | None = None) -> None:
    """Delete a user who has left nothing behind (see user_delete_refusal)."""
    _lock_administrators()
    refusal = user_delete_refusal(user=user, acting_user=acting_user)
    if refusal:
        raise ValidationError(refusal, code="referenced")
    was_administrator = _is_active_administrator(user)
    before = _user_state(user)
    log_audit(
        action=AuditAction.DELETED,
        obj=user,
        category=Category.USERS,
        changes=diff_fields(before, {}),
    )
    user.delete()
    _ensure_an_administrator_remains(was_administrator=was_administrator)


# --- teams -------------------------------------------------------------------------------


def _clean_team_name(name: str, *, exclude_pk: int | None = None) -> str:
    name = " ".join(name.split())
    if not name:
        raise ValidationError({"name": _("Enter a name.")}, code="required")
    max_length = Group._meta.get_field("name").max_length or 150
    if len(name) > max_length:
        raise ValidationError(
            {"name": _("At most %(count)d characters.") % {"count": max_length}}, code="max_length"
        )
    if is_role_name(name):
        raise ValidationError(
            {
                "name": _("“%(name)s” is the name of a role; a team needs another name.")
                % {"name": name}
            },
            code="role_name",
        )
    others = Group.objects.filter(name__iexact=name)
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    if others.exists():
        raise ValidationError({"name": _("A team with this name already exists.")}, code="unique")
    return name


def _team_state(team: Group) -> dict:
    return {
        "name": team.name,
        "members": sorted(
            get_user_model().objects.filter(groups=team).values_list("username", flat=True)
        ),
    }


def _set_members(team: Group, members: Iterable) -> None:
    team.user_set.set(list(members))


@transaction.atomic
def team_create(*, name: str, members: Iterable = ()) -> Team:
    team = Team(name=_clean_team_name(name))
    team.save()
    _set_members(team, members)
    log_audit(
        action=AuditAction.CREATED,
        obj=team,
        category=Category.USERS,
        changes=diff_fields({}, _team_state(team)),
    )
    return team


@transaction.atomic
def team_update(*, team: Team, name: str, members: Iterable | None = None) -> dict:
    """Rename a team and, when `members` is given, make them its members."""
    team = Team.objects.select_for_update().get(pk=team.pk)
    before = _team_state(team)
    team.name = _clean_team_name(name, exclude_pk=team.pk)
    team.save(update_fields=["name"])
    if members is not None:
        _set_members(team, members)
    changes = diff_fields(before, _team_state(team))
    if changes:
        log_audit(action=AuditAction.UPDATED, obj=team, category=Category.USERS, changes=changes)
    return changes


def team_ensure_default(*, user: User | None = None) -> tuple[Team, bool]:
    """The first team, or the default one made for a first run with `user` in it
    (calmail.common.teams.ensure_default_team); a new team is in the audit trail."""
    group, created = ensure_default_team(user=user)
    team = Team.objects.get(pk=group.pk)
    if created:
        log_audit(
            action=AuditAction.CREATED,
            obj=team,
            category=Category.USERS,
            changes=diff_fields({}, _team_state(team)),
        )
    return team, created


def team_delete_refusal(team: Team) -> str | None:
    dependents = team_dependents(team)
    if not dependents:
        return None
    return _("%(team)s still has %(what)s: move or delete them first, or rename the team.") % {
        "team": team.name,
        "what": ", ".join(str(dependent) for dependent in dependents),
    }


@transaction.atomic
def team_delete(*, team: Team) -> None:
    """Delete a team that nothing belongs to any more; its members just leave it."""
    team = Team.objects.select_for_update().get(pk=team.pk)
    refusal = team_delete_refusal(team)
    if refusal:
        raise ValidationError(refusal, code="in_use")
    log_audit(
        action=AuditAction.DELETED,
        obj=team,
        category=Category.USERS,
        changes=diff_fields(_team_state(team), {}),
    )
    team.delete()
