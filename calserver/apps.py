import logging

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from calmail.common.navigation import NavEntry
from inventory.navigation import DATA_MENU


class CalserverConfig(AppConfig):
    """The calServer connector: reads customers, contacts, locations, instruments and
    tickets from calServer's REST API into calmail's inventory (administrators only)."""

    name = "calserver"
    verbose_name = _("calServer connection")
    nav_entries = (
        NavEntry(
            key="calserver",
            label=_("calServer"),
            url_name="calserver:detail",
            permission="calserver.view_calserverconnection",
            icon="cloud-arrow-down",
            order=85,
            group=DATA_MENU,
        ),
    )
    # Read by calmail.common.views.healthz: "calserver_sync" in its details.
    health_details = "calserver.selectors.health_details"

    def ready(self):
        # Imported here: these modules load models, ready only once the registry is.
        from calserver.client import RedactQueryFilter
        from maillog.links import register_object_link

        register_object_link(
            "calserver.calserverconnection",
            "calserver:detail_pk",
            permission="calserver.view_calserverconnection",
        )
        # urllib3 logs each request's URL at DEBUG; with v1 credentials in the query
        # that would put them into the worker's log.
        logging.getLogger("urllib3.connectionpool").addFilter(RedactQueryFilter())
