from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InventoryConfig(AppConfig):
    """calServer's data that mails draw on: customers, locations, instruments, support
    tickets, and the recipients built from them (distribution lists, system addresses)."""

    name = "inventory"
    verbose_name = _("calServer data and recipients")
