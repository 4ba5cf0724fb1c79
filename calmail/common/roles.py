"""The three roles, as Django groups carrying model permissions.

Team groups (which own actions and mails) are ordinary Django groups too; a role
group is recognised by its name. Apps grant their permissions to roles in data
migrations through grant_permissions(), so a fresh database and an upgraded one
end up the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django.apps.registry import Apps
    from django.contrib.auth.models import AnonymousUser, Group, User
    from django.db.models import QuerySet

ADMINISTRATOR = "Administrator"
POWER_USER = "Power user"
VIEWER = "Viewer"
ROLE_NAMES = (ADMINISTRATOR, POWER_USER, VIEWER)
ROLE_LABELS = {
    ADMINISTRATOR: _("Administrator"),
    POWER_USER: _("Power user"),
    VIEWER: _("Viewer"),
}


def is_administrator(user: User | AnonymousUser) -> bool:
    """Administrators see and manage everything, like superusers."""
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name=ADMINISTRATOR).exists()


def role_of(user: User | AnonymousUser) -> str:
    """The user's role name ("" for none). A superuser counts as an administrator; a
    user left in several role groups (Django admin allows it) counts by the highest."""
    if user.is_superuser:
        return ADMINISTRATOR
    names = set(user.groups.filter(name__in=ROLE_NAMES).values_list("name", flat=True))
    return next((role for role in ROLE_NAMES if role in names), "")


def is_role_name(name: str) -> bool:
    """Would a group of this name be mistaken for a role? Compared without case and
    spaces, against the role names and their labels in every language of the site."""
    from django.conf import settings
    from django.utils import translation

    def key(text: str) -> str:
        return "".join(str(text).split()).replace("-", "").casefold()

    taken = {key(role) for role in ROLE_NAMES}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            taken.update(key(str(label)) for label in ROLE_LABELS.values())
    return key(name) in taken


def team_groups(user: User | AnonymousUser) -> QuerySet[Group]:
    """The user's own groups that are teams, not roles: they own actions and mails."""
    from django.contrib.auth.models import Group

    if not user.is_authenticated:
        return Group.objects.none()
    return user.groups.exclude(name__in=ROLE_NAMES)


def grant_permissions(apps: Apps, grants: dict[str, list[str]]) -> None:
    """For data migrations: give each role the listed "app_label.codename" permissions.

    Permissions are normally created after migrate (post_migrate); create them now so
    that a single migrate on an empty database leaves the roles complete.
    """
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        # create_permissions() only asks whether a models module is set, not which.
        app_config.models_module = True  # type: ignore[assignment]
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perms in grants.items():
        group, _created = Group.objects.get_or_create(name=role)
        for perm in perms:
            app_label, codename = perm.split(".", 1)
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
