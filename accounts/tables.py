import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from accounts.selectors import CHANGE_TEAM, CHANGE_USER, DELETE_TEAM, DELETE_USER
from calmail.common.roles import ROLE_LABELS
from calmail.common.tables import (
    CalmailTable,
    MenuItem,
    RowMenuColumn,
    SelectionColumn,
    YesNoColumn,
)
from inventory.models import Language
from inventory.recipients import user_display_name

NUMBER = {"td": {"class": "text-end"}, "th": {"class": "text-end"}}


class UserTable(CalmailTable):
    default_columns = (
        "name",
        "username",
        "email",
        "role",
        "teams",
        "is_active",
        "sign_in_locked",
        "last_login",
    )

    selection = SelectionColumn()
    name = tables.Column(
        verbose_name=_("Name"),
        accessor="pk",
        order_by=("last_name", "first_name", "username"),
        linkify=lambda record: reverse("accounts:user_update", args=[record.pk]),
    )
    username = tables.Column(verbose_name=_("User name"))
    email = tables.EmailColumn(verbose_name=_("E-mail address"))
    role = tables.Column(verbose_name=_("Role"), empty_values=())
    teams = tables.Column(verbose_name=_("Teams"), accessor="pk", orderable=False)
    language = tables.Column(verbose_name=_("Language"))
    is_active = YesNoColumn(verbose_name=_("Active"))
    sign_in_locked = tables.Column(verbose_name=_("Sign-in locked"), empty_values=())
    last_login = tables.DateTimeColumn(verbose_name=_("Last login"), short=True)
    date_joined = tables.DateTimeColumn(verbose_name=_("Created"), short=True)
    actions = RowMenuColumn()

    class Meta(CalmailTable.Meta):
        fields = ()
        sequence = (
            "selection",
            "name",
            "username",
            "email",
            "role",
            "teams",
            "language",
            "is_active",
            "sign_in_locked",
            "last_login",
            "date_joined",
            "actions",
        )
        order_by = ("username",)
        row_attrs = {"class": lambda record: "" if record.is_active else "text-body-secondary"}

    def render_name(self, record):
        return user_display_name(record)

    def value_name(self, record):
        return user_display_name(record)

    def render_role(self, value):
        return ROLE_LABELS.get(value, "—")

    def value_role(self, value):
        return str(ROLE_LABELS.get(value, ""))

    def render_teams(self, record):
        if not record.team_list:
            return "—"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (reverse("accounts:team_detail", args=[team.pk]), team.name)
                for team in record.team_list
            ),
        )

    def value_teams(self, record):
        return ", ".join(team.name for team in record.team_list)

    def render_language(self, value):
        return Language(value).label if value in Language.values else value

    def value_language(self, value):
        return str(Language(value).label) if value in Language.values else value

    def render_sign_in_locked(self, value):
        if not value:
            return "—"
        return format_html(
            '<span class="badge text-bg-danger"><i class="bi bi-shield-lock" aria-hidden="true"></i> {}</span>',
            _("locked"),
        )

    def value_sign_in_locked(self, value):
        return str(_("yes") if value else _("no"))

    def get_row_menu(self, record):
        items = []
        if self.user.has_perm(CHANGE_USER) and record.sign_in_locked:
            items.append(
                MenuItem(
                    _("Unlock sign-in"),
                    reverse("accounts:user_unlock", args=[record.pk]),
                    "unlock",
                )
            )
        if self.user.has_perm(CHANGE_USER):
            items += [
                MenuItem(_("Edit"), reverse("accounts:user_update", args=[record.pk]), "pencil"),
                MenuItem(
                    _("Set password"), reverse("accounts:user_password", args=[record.pk]), "key"
                ),
            ]
            if record.email and record.is_active:
                items.append(
                    MenuItem(
                        _("Send set-password link"),
                        reverse("accounts:user_password_link", args=[record.pk]),
                        "envelope",
                    )
                )
            if record.is_active:
                items.append(
                    MenuItem(
                        _("Deactivate"),
                        reverse("accounts:user_deactivate", args=[record.pk]),
                        "person-slash",
                    )
                )
            else:
                items.append(
                    MenuItem(
                        _("Reactivate"),
                        reverse("accounts:user_reactivate", args=[record.pk]),
                        "person-check",
                    )
                )
        if self.user.has_perm(DELETE_USER):
            items.append(
                MenuItem(
                    _("Delete"),
                    reverse("accounts:user_delete", args=[record.pk]),
                    "trash",
                    danger=True,
                )
            )
        return items


class TeamTable(CalmailTable):
    selection = SelectionColumn()
    name = tables.Column(
        verbose_name=_("Name"),
        linkify=lambda record: reverse("accounts:team_detail", args=[record.pk]),
    )
    member_count = tables.Column(verbose_name=_("Members"), attrs=NUMBER)
    action_count = tables.Column(verbose_name=_("Actions"), attrs=NUMBER)
    template_count = tables.Column(verbose_name=_("Templates"), attrs=NUMBER)
    list_count = tables.Column(verbose_name=_("Distribution lists"), attrs=NUMBER)
    recent_mail_count = tables.Column(verbose_name=_("Mails (30 days)"), attrs=NUMBER)
    actions = RowMenuColumn()

    class Meta(CalmailTable.Meta):
        fields = ()
        sequence = (
            "selection",
            "name",
            "member_count",
            "action_count",
            "template_count",
            "list_count",
            "recent_mail_count",
            "actions",
        )
        order_by = ("name",)

    def render_recent_mail_count(self, record, value):
        if not value:
            return value
        return format_html(
            '<a href="{}?owner_group={}">{}</a>', reverse("mailbox:list"), record.pk, value
        )

    def value_recent_mail_count(self, value):
        return value

    def get_row_menu(self, record):
        items = [MenuItem(_("Open"), reverse("accounts:team_detail", args=[record.pk]), "people")]
        if self.user.has_perm(CHANGE_TEAM):
            items.append(
                MenuItem(_("Edit"), reverse("accounts:team_update", args=[record.pk]), "pencil")
            )
        if self.user.has_perm(DELETE_TEAM):
            items.append(
                MenuItem(
                    _("Delete"),
                    reverse("accounts:team_delete", args=[record.pk]),
                    "trash",
                    danger=True,
                )
            )
        return items
