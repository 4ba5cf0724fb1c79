"""The main navigation: each section app declares its entries on its AppConfig
(`nav_entries`); this module only collects them, in their order, and keeps the ones a user
may open. calmail.common names no section."""

from dataclasses import dataclass

from django.apps import apps
from django.urls import reverse
from django.utils.functional import Promise


@dataclass(frozen=True)
class NavEntry:
    """One link of the main navigation: shown to users with `permission`, at `order`
    (smaller first), as `label` with the Bootstrap icon `icon`, leading to `url_name`."""

    key: str
    label: Promise
    url_name: str
    permission: str
    icon: str
    order: int


def nav_entries() -> list[NavEntry]:
    entries = [
        entry for config in apps.get_app_configs() for entry in getattr(config, "nav_entries", ())
    ]
    return sorted(entries, key=lambda entry: entry.order)


def sections_for(user) -> list[dict]:
    """The navigation entries the user may open, in order."""
    if not user.is_authenticated:
        return []
    return [
        {"key": e.key, "label": e.label, "url": reverse(e.url_name), "icon": e.icon}
        for e in nav_entries()
        if user.has_perm(e.permission)
    ]
