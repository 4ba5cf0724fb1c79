"""From a log entry to the page of the object it concerns.

Apps register the page of their models here, e.g.
`register_object_link("accounts.team", "accounts:team_detail", permission=...)` in their
AppConfig.ready(). With a permission, only readers who have it get the link; everyone
else sees the object's name as text (a link that answers 403 helps nobody).
"""

from django.urls import NoReverseMatch, reverse

# model label -> (URL name, permission the reader needs, "" for none)
_LINKS: dict[str, tuple[str, str]] = {
    "mailbox.outboxmessage": ("mailbox:detail", ""),
    "smtpconfig.smtpconfiguration": ("smtpconfig:detail", ""),
    # Edit pages only for who may edit (viewers got a 403); the preview is for readers.
    "templates_app.mailtemplate": ("templates_app:preview", "templates_app.view_mailtemplate"),
    "inventory.distributionlist": ("inventory:distributionlist_detail", ""),
    "inventory.systemaddress": ("inventory:systemaddress_update", "inventory.change_systemaddress"),
}


def register_object_link(model_label: str, url_name: str, *, permission: str = "") -> None:
    """`model_label` is "app_label.modelname" (lower case); the URL takes the pk."""
    _LINKS[model_label.lower()] = (url_name, permission)


def linked_model_labels() -> list[str]:
    return list(_LINKS)


def object_url(content_type, object_id, *, user=None) -> str | None:
    if content_type is None or object_id is None:
        return None
    url_name, permission = _LINKS.get(f"{content_type.app_label}.{content_type.model}", ("", ""))
    if not url_name:
        return None
    if permission and (user is None or not user.has_perm(permission)):
        return None
    try:
        return reverse(url_name, args=[object_id])
    except NoReverseMatch:
        return None
