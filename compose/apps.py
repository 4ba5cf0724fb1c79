from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ComposeConfig(AppConfig):
    """Mail schreiben (5.6.6): power users write a mail by hand; it goes through the outbox."""

    name = "compose"
    label = "compose"
    verbose_name = _("Compose")
