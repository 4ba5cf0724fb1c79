from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MaillogConfig(AppConfig):
    name = "maillog"
    label = "maillog"
    verbose_name = _("Log")

    def ready(self):
        # Logins are recorded through Django's auth signals: they come from one request,
        # never from a bulk update that a signal could miss.
        from maillog import signals  # noqa: F401
