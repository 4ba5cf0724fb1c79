"""The navigation: only the sections the user may open."""

from dataclasses import dataclass

from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Section:
    key: str
    label: Promise
    url_name: str
    permission: str
    icon: str


# One entry per section app; later sections add theirs here.
SECTIONS = (
    Section("actions", _("Actions"), "actions:list", "actions.view_action", "calendar-event"),
    Section("mailbox", _("Outbox"), "mailbox:list", "mailbox.view_outboxmessage", "inbox"),
    Section(
        "templates",
        _("Templates"),
        "templates_app:list",
        "templates_app.view_mailtemplate",
        "file-earmark-text",
    ),
    Section(
        "smtpconfig",
        _("SMTP configurations"),
        "smtpconfig:list",
        "smtpconfig.view_smtpconfiguration",
        "hdd-network",
    ),
    Section(
        "distribution_lists",
        _("Distribution lists"),
        "inventory:distributionlist_list",
        "inventory.view_distributionlist",
        "people",
    ),
    Section(
        "system_addresses",
        _("System addresses"),
        "inventory:systemaddress_list",
        "inventory.view_systemaddress",
        "building",
    ),
    Section(
        "calserver_data",
        _("Customers & instruments"),
        "inventory:data",
        "inventory.view_customer",
        "rulers",
    ),
    Section("maillog", _("Log"), "maillog:list", "maillog.view_logentry", "journal-text"),
    Section("accounts", _("Users & teams"), "accounts:user_list", "auth.view_user", "person-gear"),
    Section("compose", _("Compose"), "compose:new", "compose.send_mail", "pencil-square"),
)


def sections_for(user) -> list[dict]:
    if not user.is_authenticated:
        return []
    return [
        {"key": s.key, "label": s.label, "url": reverse(s.url_name), "icon": s.icon}
        for s in SECTIONS
        if user.has_perm(s.permission)
    ]


def navigation(request):
    user = getattr(request, "user", None)
    if user is None:
        return {}
    return {"nav_sections": sections_for(user)}
