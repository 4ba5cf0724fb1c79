from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from calmail.common.navigation import NavEntry
from maillog.tabs import register_log_tab


class MailboxConfig(AppConfig):
    # Note: the package name shadows the standard library's `mailbox` module for the whole
    # process (docs/design.md). Nothing in calmail needs that module; never import aiosmtpd.handlers.
    name = "mailbox"
    verbose_name = _("Outbox")
    nav_entries = (
        NavEntry(
            key="mailbox",
            label=_("Outbox"),
            url_name="mailbox:list",
            permission="mailbox.view_outboxmessage",
            icon="inbox",
            order=20,
        ),
    )

    def ready(self):
        # The delivery attempts are the outbox's rows, listed as a tab of the Log.
        register_log_tab("attempts", _("Delivery attempts"), "mailbox:attempts")
