from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from calmail.common.navigation import NavEntry
from maillog.params import register_param_choices


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

    def ready(self):
        # Models load only once Django is ready. The Log shows a run's trigger by its label.
        from actions.models import Trigger

        register_param_choices("trigger", Trigger.choices)
