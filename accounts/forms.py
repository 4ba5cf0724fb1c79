import logging

from crispy_forms.layout import Div, Fieldset, Layout
from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import PasswordResetForm, SetPasswordForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts.models import Team
from accounts.services import (
    forgotten_link_sent_recently,
    user_send_password_link,
    user_set_password,
)
from calmail.common.forms import CrispyFormMixin
from calmail.common.roles import ADMINISTRATOR, POWER_USER, ROLE_LABELS, VIEWER, role_of
from inventory.models import Language
from inventory.recipients import user_display_name
from inventory.services import profile_for

logger = logging.getLogger(__name__)

ROLE_CHOICES = [(role, ROLE_LABELS[role]) for role in (ADMINISTRATOR, POWER_USER, VIEWER)]
ROLE_HELP = _(
    "Administrator: everything, including users, teams and SMTP configurations. "
    "Power user: writes mails, manages the actions and templates of their teams. "
    "Viewer: sees the mails, actions and templates of their teams."
)


class PasswordMode:
    LINK = "link"
    SET = "set"
    NONE = "none"


class TeamChoiceField(forms.ModelMultipleChoiceField):
    widget = forms.CheckboxSelectMultiple


class UserChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        name = user_display_name(obj)
        label = f"{name} <{obj.email}>" if obj.email else name
        deactivated = _("deactivated")
        return label if obj.is_active else f"{label} ({deactivated})"


class UserForm(CrispyFormMixin, forms.Form):
    """Create or edit a user: details, exactly one role, teams, language. A new user gets
    a set-password link by mail, a password typed here, or none yet."""

    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    username = forms.CharField(
        label=_("User name"),
        max_length=150,
        help_text=_("Used to sign in. Letters, digits and @ . + - _ only."),
    )
    email = forms.EmailField(
        label=_("E-mail address"),
        required=False,
        help_text=_("Where the user receives mails and set-password links."),
    )
    role = forms.ChoiceField(
        label=_("Role"), choices=ROLE_CHOICES, widget=forms.RadioSelect, help_text=ROLE_HELP
    )
    teams = TeamChoiceField(
        label=_("Teams"),
        queryset=Team.objects.none(),
        required=False,
        help_text=_("Members see and manage what belongs to their teams."),
    )
    language = forms.ChoiceField(
        label=_("Language"),
        choices=Language.choices,
        help_text=_("The language of calmail's pages for this user and of the mails they receive."),
    )
    is_active = forms.BooleanField(
        label=_("Active"),
        required=False,
        initial=True,
        help_text=_("Deactivated users cannot sign in; everything they did stays on record."),
    )
    password_mode = forms.ChoiceField(
        label=_("Password"),
        choices=[
            (PasswordMode.LINK, _("Send a link by mail to set the password (recommended)")),
            (PasswordMode.SET, _("Set a password now")),
            (PasswordMode.NONE, _("No password yet")),
        ],
        initial=PasswordMode.LINK,
        widget=forms.RadioSelect,
    )
    password1 = forms.CharField(
        label=_("New password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html,
    )
    password2 = forms.CharField(
        label=_("Repeat the password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, user=None, **kwargs):
        self.instance = user
        if user is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "first_name": user.first_name,
                "last_name": user.last_name,
                "username": user.username,
                "email": user.email,
                "role": role_of(user),
                "teams": [team.pk for team in Team.objects.filter(user=user)],
                "language": profile_for(user).language,
                "is_active": user.is_active,
            }
        super().__init__(*args, **kwargs)

    def prepare_fields(self):
        self.fields["teams"].queryset = Team.objects.order_by("name")
        if not self.fields["language"].initial:
            self.fields["language"].initial = settings.LANGUAGE_CODE[:2]
        if self.instance is not None:
            # Passwords of existing users have their own page and link.
            for name in ("password_mode", "password1", "password2"):
                del self.fields[name]

    def build_layout(self):
        sections = [
            Fieldset(
                _("Person"),
                Div(
                    Div("first_name", css_class="col-md-6"),
                    Div("last_name", css_class="col-md-6"),
                    css_class="row",
                ),
                Div(
                    Div("username", css_class="col-md-6"),
                    Div("email", css_class="col-md-6"),
                    css_class="row",
                ),
                "language",
                "is_active",
            ),
            Fieldset(_("Rights"), "role", Div("teams", css_class="calmail-checklist")),
        ]
        if self.instance is None:
            sections.append(
                Fieldset(
                    _("Password"),
                    "password_mode",
                    Div(
                        Div("password1", css_class="col-md-6"),
                        Div("password2", css_class="col-md-6"),
                        css_class="row",
                    ),
                )
            )
        return Layout(*sections)

    def clean(self):
        cleaned = super().clean()
        mode = cleaned.get("password_mode")
        if mode == PasswordMode.SET:
            password1, password2 = cleaned.get("password1"), cleaned.get("password2")
            if not password1:
                self.add_error("password1", _("Enter the password."))
            elif password1 != password2:
                self.add_error("password2", _("The two passwords differ."))
            else:
                probe = get_user_model()(
                    username=cleaned.get("username", ""),
                    email=cleaned.get("email", ""),
                    first_name=cleaned.get("first_name", ""),
                    last_name=cleaned.get("last_name", ""),
                )
                try:
                    password_validation.validate_password(password1, probe)
                except ValidationError as exc:
                    self.add_error("password1", exc)
        elif mode == PasswordMode.LINK and not cleaned.get("email"):
            self.add_error("email", _("A set-password link needs an e-mail address."))
        return cleaned

    def service_values(self) -> dict:
        data = self.cleaned_data
        values = {
            name: data[name]
            for name in (
                "username",
                "email",
                "first_name",
                "last_name",
                "role",
                "language",
                "is_active",
            )
        }
        values["teams"] = list(data["teams"])
        return values


class AdminSetPasswordForm(CrispyFormMixin, SetPasswordForm):
    """An administrator sets another user's password (Django's validators apply)."""

    submit_label = _("Set password")

    def save(self, commit=True):
        # Through the service, so the audit trail records it (without the password).
        user_set_password(user=self.user, password=self.cleaned_data["new_password1"])
        return self.user


class TeamForm(CrispyFormMixin, forms.Form):
    name = forms.CharField(label=_("Name"), max_length=150)
    members = UserChoiceField(
        label=_("Members"),
        queryset=get_user_model().objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args, team=None, **kwargs):
        if team is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": team.name,
                "members": list(team.user_set.values_list("pk", flat=True)),
            }
        super().__init__(*args, **kwargs)

    def prepare_fields(self):
        self.fields["members"].queryset = get_user_model().objects.order_by(
            "-is_active", "last_name", "first_name", "username"
        )

    def build_layout(self):
        return Layout("name", Div("members", css_class="calmail-checklist"))

    def service_values(self) -> dict:
        return {"name": self.cleaned_data["name"], "members": list(self.cleaned_data["members"])}


class PasswordResetByOutboxForm(PasswordResetForm):
    """Django's "forgot your password?" form, but the mail goes through calmail's outbox
    (so it is retried, logged and visible) instead of Django's mail backend. As in Django,
    only active users with a usable password get a link, and the page never tells whether
    an address is known."""

    def save(self, *args, **kwargs):
        for user in self.get_users(self.cleaned_data["email"]):
            if forgotten_link_sent_recently(user):
                continue
            try:
                user_send_password_link(user=user, reason="forgotten")
            except ValidationError:
                # No SMTP configuration: nothing can go out, and the visitor must not
                # learn more than for an unknown address. The outbox refusal is logged.
                logger.warning("Set-password link for user %s could not be queued", user.pk)
