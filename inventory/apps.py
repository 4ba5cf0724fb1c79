from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from calmail.common.navigation import NavEntry
from inventory.navigation import DATA_MENU


class InventoryConfig(AppConfig):
    """calServer's data that mails draw on: customers, locations, instruments, support
    tickets, and the recipients built from them (distribution lists, system addresses)."""

    name = "inventory"
    verbose_name = _("calServer data and recipients")
    nav_entries = (
        NavEntry(
            key="distribution_lists",
            label=_("Distribution lists"),
            url_name="inventory:distributionlist_list",
            permission="inventory.view_distributionlist",
            icon="people",
            order=50,
            group=DATA_MENU,
        ),
        NavEntry(
            key="system_addresses",
            label=_("System addresses"),
            url_name="inventory:systemaddress_list",
            permission="inventory.view_systemaddress",
            icon="building",
            order=60,
            group=DATA_MENU,
        ),
        NavEntry(
            key="calserver_data",
            label=_("Customers & instruments"),
            url_name="inventory:data",
            permission="inventory.view_customer",
            icon="rulers",
            order=70,
            group=DATA_MENU,
        ),
    )
