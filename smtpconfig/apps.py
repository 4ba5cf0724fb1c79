from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SmtpconfigConfig(AppConfig):
    name = "smtpconfig"
    verbose_name = _("SMTP configurations")
