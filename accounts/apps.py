from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    """Users & teams: who may sign in, with which role, in which teams (administrators
    only). Users are Django's; a team is a Django group that is not a role."""

    name = "accounts"
    verbose_name = _("Users & teams")
