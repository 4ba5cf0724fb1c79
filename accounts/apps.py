from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from calmail.common.navigation import NavEntry


class AccountsConfig(AppConfig):
    """Users & teams: who may sign in, with which role, in which teams (administrators
    only). Users are Django's; a team is a Django group that is not a role."""

    name = "accounts"
    verbose_name = _("Users & teams")
    nav_entries = (
        NavEntry(
            key="accounts",
            label=_("Users & teams"),
            url_name="accounts:user_list",
            permission="auth.view_user",
            icon="person-gear",
            order=90,
        ),
    )

    def ready(self):
        # Imported here: maillog's modules load models, ready only once the registry is.
        from maillog.links import register_object_link

        # Users & teams are administrators' pages: other readers of the Log (their own
        # sign-ins) see the name without a link.
        register_object_link("auth.user", "accounts:user_update", permission="auth.change_user")
        team = {"url_name": "accounts:team_detail", "permission": "accounts.view_team"}
        register_object_link("accounts.team", **team)
        # The first run's default team is written to the Log as a plain group.
        register_object_link("auth.group", **team)
