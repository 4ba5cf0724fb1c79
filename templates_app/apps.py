from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TemplatesConfig(AppConfig):
    """Mail templates (Vorlagen, 5.6.3) and the report engine that fills their attachments."""

    name = "templates_app"
    label = "templates_app"
    verbose_name = _("Templates")

    def ready(self):
        # The built-in reports over calmail's inventory app. A calServer installation
        # registers its own providers the same way, from its own AppConfig.ready().
        from templates_app.reports import providers

        providers.register_defaults()
