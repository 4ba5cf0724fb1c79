from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from calmail.common.navigation import NavEntry


class OverviewConfig(AppConfig):
    """The home page: the outbox in figures, what needs attention, the next runs."""

    name = "overview"
    label = "overview"
    verbose_name = _("Overview")
    nav_entries = (
        NavEntry(
            key="overview",
            label=_("Overview"),
            url_name="overview:index",
            # Its figures are the outbox's: whoever reads the outbox reads them (scoped).
            permission="mailbox.view_outboxmessage",
            icon="speedometer2",
            order=0,
        ),
    )
