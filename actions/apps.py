from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from calmail.common.navigation import NavEntry


class ActionsConfig(AppConfig):
    """Scheduled mail actions (Aktionen, 5.6.1) and the beat-driven scheduler that runs them."""

    name = "actions"
    label = "actions"
    verbose_name = _("Actions")
    nav_entries = (
        NavEntry(
            key="actions",
            label=_("Actions"),
            url_name="actions:list",
            permission="actions.view_action",
            icon="calendar-event",
            order=10,
        ),
    )
