import django_tables2 as tables
from django.db.models import Case, Value, When
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from calmail.common.tables import (
    CalmailTable,
    MenuItem,
    RowMenuColumn,
    SelectionColumn,
    YesNoColumn,
)
from smtpconfig.models import Mailer, SmtpConfiguration


class SmtpConfigurationTable(CalmailTable):
    """The 13 columns of 5.6.4. The password column says only whether one is stored."""

    default_columns = (
        "is_default",
        "name",
        "mailer",
        "host",
        "port",
        "security",
        "smtp_auth",
        "username",
    )
    filter_columns = {"has_password": "password"}

    selection = SelectionColumn()
    is_default = YesNoColumn(verbose_name=_("Default"))
    host = tables.Column(verbose_name=_("Host"))
    id = tables.Column(verbose_name=_("ID"))
    mailer = tables.Column(verbose_name=_("Mailer"))
    # Linked to the detail page in render_name (with a "deactivated" badge).
    name = tables.Column(verbose_name=_("Name"))
    password = tables.Column(verbose_name=_("Password"), empty_values=(), accessor="pk")
    port = tables.Column(verbose_name=_("Port"))
    sendmail_path = tables.Column(verbose_name=_("Sendmail"))
    smtp_auth = YesNoColumn(verbose_name=_("SMTP auth"))
    security = tables.Column(verbose_name=_("SMTP secure"))
    timeout = tables.Column(verbose_name=_("Timeout"))
    username = tables.Column(verbose_name=_("Username"))
    actions = RowMenuColumn()

    class Meta(CalmailTable.Meta):
        model = SmtpConfiguration
        fields = ()
        sequence = (
            "selection",
            "is_default",
            "host",
            "id",
            "mailer",
            "name",
            "password",
            "port",
            "sendmail_path",
            "smtp_auth",
            "security",
            "timeout",
            "username",
            "actions",
        )
        order_by = ("name",)

    def render_name(self, record, value):
        link = format_html(
            '<a href="{}">{}</a>', reverse("smtpconfig:detail", args=[record.pk]), value
        )
        if record.is_active:
            return link
        return format_html(
            '{} <span class="badge text-bg-secondary">{}</span>', link, _("deactivated")
        )

    def value_name(self, value):
        return value

    def render_password(self, record):
        if not record.has_password:
            return format_html('<span class="text-body-tertiary">{}</span>', _("not set"))
        return format_html('<i class="bi bi-key" aria-hidden="true"></i> {}', _("set"))

    def order_password(self, queryset, is_descending):
        # Ciphertext has no meaningful order; sort by "set / not set" instead.
        queryset = queryset.annotate(
            password_set=Case(When(password="", then=Value(0)), default=Value(1))
        ).order_by(("-" if is_descending else "") + "password_set", "name")
        return queryset, True

    def value_password(self, record):
        return str(_("set") if record.has_password else _("not set"))

    def render_security(self, record):
        label = record.get_security_display()
        if (
            record.mailer == Mailer.SMTP
            and record.security != "none"
            and not record.verify_certificate
        ):
            return format_html(
                '{} <span class="badge text-bg-warning" title="{}">{}</span>',
                label,
                _("The server certificate is not verified."),
                _("unverified"),
            )
        return label

    def value_security(self, record):
        return record.get_security_display()

    def render_host(self, record, value):
        if not record.password_sign_in_retiring:
            return value
        return format_html(
            '{} <a class="badge text-bg-warning text-decoration-none" href="{}" title="{}" '
            'data-testid="oauth-warning">{}</a>',
            value,
            reverse("smtpconfig:update", args=[record.pk]),
            _("Microsoft is switching off password sign-in — switch to OAuth."),
            _("switch to OAuth"),
        )

    def value_host(self, value):
        return value

    def render_smtp_auth(self, record, value):
        # "yes" says little once there are several ways to sign in: OAuth is named.
        mark = self.columns["smtp_auth"].column.render(value)
        if not record.uses_oauth:
            return mark
        return format_html(
            '{} <span class="small">{}</span>', mark, record.get_auth_method_display()
        )

    def value_smtp_auth(self, record, value):
        answer = self.columns["smtp_auth"].column.value(value)
        if not record.uses_oauth:
            return answer
        return f"{answer} ({record.get_auth_method_display()})"

    def render_timeout(self, value):
        return _("%(seconds)s s") % {"seconds": value}

    def value_timeout(self, value):
        return value

    def get_row_menu(self, record):
        user = self.user
        items = []
        if user.has_perm("smtpconfig.change_smtpconfiguration"):
            items.append(
                MenuItem(_("Edit"), reverse("smtpconfig:update", args=[record.pk]), "pencil")
            )
        if user.has_perm("smtpconfig.add_smtpconfiguration"):
            items.append(
                MenuItem(_("Duplicate"), reverse("smtpconfig:duplicate", args=[record.pk]), "copy")
            )
        if (
            user.has_perm("smtpconfig.change_smtpconfiguration")
            and not record.is_default
            and record.is_active
        ):
            items.append(
                MenuItem(
                    _("Make default"), reverse("smtpconfig:set_default", args=[record.pk]), "star"
                )
            )
        if user.has_perm("smtpconfig.change_smtpconfiguration"):
            if record.is_active:
                items.append(
                    MenuItem(
                        _("Deactivate"),
                        reverse("smtpconfig:deactivate", args=[record.pk]),
                        "pause-circle",
                    )
                )
            else:
                items.append(
                    MenuItem(
                        _("Reactivate"),
                        reverse("smtpconfig:reactivate", args=[record.pk]),
                        "play-circle",
                    )
                )
        if user.has_perm("smtpconfig.test_smtpconfiguration"):
            items.append(
                MenuItem(_("Test connection"), reverse("smtpconfig:test", args=[record.pk]), "plug")
            )
            items.append(
                MenuItem(
                    _("Send test mail"), reverse("smtpconfig:test_mail", args=[record.pk]), "send"
                )
            )
        if user.has_perm("smtpconfig.delete_smtpconfiguration"):
            items.append(
                MenuItem(
                    _("Delete"),
                    reverse("smtpconfig:delete", args=[record.pk]),
                    "trash",
                    danger=True,
                )
            )
        return items
