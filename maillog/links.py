"""From a log entry to the page of the object it concerns.

Apps register the page of their models here; the actions app adds its own, e.g.
`register_object_link("actions.mailaction", "actions:detail")` in its AppConfig.ready().
"""

from django.urls import NoReverseMatch, reverse

_LINKS: dict[str, str] = {
    "mailbox.outboxmessage": "mailbox:detail",
    "smtpconfig.smtpconfiguration": "smtpconfig:detail",
    "templates_app.mailtemplate": "templates_app:update",
    "inventory.distributionlist": "inventory:distributionlist_detail",
    "inventory.systemaddress": "inventory:systemaddress_update",
}


def register_object_link(model_label: str, url_name: str) -> None:
    """`model_label` is "app_label.modelname" (lower case); the URL takes the pk."""
    _LINKS[model_label.lower()] = url_name


def linked_model_labels() -> list[str]:
    return list(_LINKS)


def object_url(content_type, object_id) -> str | None:
    if content_type is None or object_id is None:
        return None
    url_name = _LINKS.get(f"{content_type.app_label}.{content_type.model}")
    if url_name is None:
        return None
    try:
        return reverse(url_name, args=[object_id])
    except NoReverseMatch:
        return None
