"""The main navigation: each section app declares its entries on its AppConfig
(`nav_entries`); this module only collects them, in their order, and keeps the ones a user
may open. calmail.common names no section."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.apps import apps
from django.urls import reverse
from django.utils.functional import Promise

if TYPE_CHECKING:
    # For annotations only: the app configs import this module before models load.
    from django.contrib.auth.models import AnonymousUser, User


@dataclass(frozen=True)
class NavGroup:
    """A menu of the navigation bar holding several entries (e.g. the data pages), so
    the bar fits one line on a 1,366 px screen."""

    key: str
    label: Promise
    icon: str


@dataclass(frozen=True)
class NavEntry:
    """One link of the main navigation: shown to users with `permission`, at `order`
    (smaller first), as `label` with the Bootstrap icon `icon`, leading to `url_name`;
    inside the menu `group` if one is given."""

    key: str
    label: Promise
    url_name: str
    permission: str
    icon: str
    order: int
    group: NavGroup | None = None


def nav_entries() -> list[NavEntry]:
    entries = [
        entry for config in apps.get_app_configs() for entry in getattr(config, "nav_entries", ())
    ]
    return sorted(entries, key=lambda entry: entry.order)


def sections_for(user: "User | AnonymousUser") -> list[dict]:
    """The navigation entries the user may open, in order."""
    if not user.is_authenticated:
        return []
    return [
        {
            "key": e.key,
            "label": e.label,
            "url": reverse(e.url_name),
            "icon": e.icon,
            "group": e.group,
        }
        for e in nav_entries()
        if user.has_perm(e.permission)
    ]


def menu_of(sections: list[dict]) -> list[dict]:
    """The bar as shown: entries of a group become one menu where the group's first entry
    stands (its entries in their order); a group the user sees one entry of stays a link."""
    members: dict[str, list[dict]] = {}
    for section in sections:
        if section["group"] is not None:
            members.setdefault(section["group"].key, []).append(section)
    menu: list[dict] = []
    for section in sections:
        group = section["group"]
        if group is None or len(members[group.key]) == 1:
            menu.append(section)
        elif members[group.key][0] is section:
            menu.append(
                {
                    "key": group.key,
                    "label": group.label,
                    "icon": group.icon,
                    "children": members[group.key],
                }
            )
    return menu
