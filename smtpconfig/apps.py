from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from calmail.common.navigation import NavEntry


class SmtpconfigConfig(AppConfig):
    name = "smtpconfig"
    verbose_name = _("SMTP configurations")
    nav_entries = (
        NavEntry(
            key="smtpconfig",
            label=_("SMTP configurations"),
            url_name="smtpconfig:list",
            permission="smtpconfig.view_smtpconfiguration",
            icon="hdd-network",
            order=40,
        ),
    )
