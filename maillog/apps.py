from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from calmail.common.navigation import NavEntry


class MaillogConfig(AppConfig):
    name = "maillog"
    label = "maillog"
    verbose_name = _("Log")
    nav_entries = (
        NavEntry(
            key="maillog",
            label=_("Log"),
            url_name="maillog:list",
            permission="maillog.view_logentry",
            icon="journal-text",
            order=80,
        ),
    )

    def ready(self):
        # Logins are recorded through Django's auth signals: they come from one request,
        # never from a bulk update that a signal could miss. (Imported here: the receivers
        # use models, which load only once the app registry is ready.)
        from maillog import signals  # noqa: F401
