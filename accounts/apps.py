from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    """Users & teams: who may sign in, with which role, in which teams (administrators
    only). Users are Django's; a team is a Django group that is not a role."""

    name = "accounts"
    verbose_name = _("Users & teams")

    def ready(self):
        from maillog.links import register_object_link

        # Users & teams are administrators' pages: other readers of the Log (their own
        # sign-ins) see the name without a link.
        register_object_link("auth.user", "accounts:user_update", permission="auth.change_user")
        register_object_link(
            "accounts.team", "accounts:team_detail", permission="accounts.view_team"
        )
