from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from calmail.common.navigation import NavEntry


class ComposeConfig(AppConfig):
    """Mail schreiben (5.6.6): power users write a mail by hand; it goes through the outbox."""

    name = "compose"
    label = "compose"
    verbose_name = _("Compose")
    nav_entries = (
        NavEntry(
            key="compose",
            label=_("Compose"),
            url_name="compose:new",
            permission="compose.send_mail",
            icon="pencil-square",
            order=100,
        ),
    )
