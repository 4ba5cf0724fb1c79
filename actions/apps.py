from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ActionsConfig(AppConfig):
    """Scheduled mail actions (Aktionen, 5.6.1) and the beat-driven scheduler that runs them."""

    name = "actions"
    label = "actions"
    verbose_name = _("Actions")

    def ready(self):
        from actions.services import template_users
        from templates_app.services import register_template_user

        register_template_user(template_users)
