from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from calmail.common.navigation import NavEntry


class TemplatesConfig(AppConfig):
    """Mail templates (Vorlagen, 5.6.3) and the report engine that fills their attachments."""

    name = "templates_app"
    label = "templates_app"
    verbose_name = _("Templates")
    nav_entries = (
        NavEntry(
            key="templates",
            label=_("Templates"),
            url_name="templates_app:list",
            permission="templates_app.view_mailtemplate",
            icon="file-earmark-text",
            order=30,
        ),
    )

    def ready(self):
        # The built-in reports over calmail's inventory app. A calServer installation
        # registers its own providers the same way, from its own AppConfig.ready().
        # (Imported here: the providers load models, ready only once the registry is.)
        from templates_app.reports import providers

        providers.register_defaults()
