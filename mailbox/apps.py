from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MailboxConfig(AppConfig):
    # Note: the package name shadows the standard library's `mailbox` module for the whole
    # process (DESIGN.md). Nothing in calmail needs that module; never import aiosmtpd.handlers.
    name = "mailbox"
    verbose_name = _("Outbox")
