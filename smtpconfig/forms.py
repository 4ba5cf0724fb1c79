from crispy_forms.layout import Div, Field, Fieldset, Layout
from django import forms
from django.utils.translation import gettext_lazy as _

from calmail.common.forms import CrispyFormMixin
from smtpconfig.models import MICROSOFT_SMTP_HOST, AuthMethod, Security, SmtpConfiguration
from smtpconfig.services import EDITABLE_FIELDS, SECRET_FIELDS
from smtpconfig.transport.oauth import (
    OAuthSetupError,
    validate_certificate,
    validate_service_account,
)

# Server settings filled in when a provider's method is chosen without a host.
PRESETS = {
    AuthMethod.MICROSOFT: (MICROSOFT_SMTP_HOST, 587, Security.STARTTLS),
    AuthMethod.GOOGLE: ("smtp.gmail.com", 587, Security.STARTTLS),
}


class SecretTextarea(forms.Textarea):
    """A textarea for a key that is never rendered back, like PasswordInput(render_value=False)."""

    def format_value(self, value):
        return None


def _secret_input() -> forms.PasswordInput:
    return forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})


class SmtpConfigurationForm(CrispyFormMixin, forms.ModelForm):
    """Create/edit. Secrets are write-only: never rendered, blank keeps the stored one.

    The sign-in method decides which fields count; a small script (smtpconfig.js) shows
    only those and fills in the provider's server. Without it every field shows, and the
    model's validation asks for what the chosen method needs."""

    password = forms.CharField(
        label=_("Password"), required=False, strip=False, widget=_secret_input()
    )
    clear_password = forms.BooleanField(label=_("Remove the stored password"), required=False)
    oauth_client_secret = forms.CharField(
        label=_("Client secret"),
        required=False,
        strip=True,
        widget=_secret_input(),
    )
    clear_oauth_client_secret = forms.BooleanField(
        label=_("Remove the stored client secret"), required=False
    )
    oauth_certificate = forms.CharField(
        label=_("Certificate (instead of a client secret)"),
        required=False,
        widget=SecretTextarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}),
    )
    clear_oauth_certificate = forms.BooleanField(
        label=_("Remove the stored certificate"), required=False
    )
    # Token endpoints are HTTPS (oauthlib refuses anything else).
    oauth_token_url = forms.URLField(
        label=_("Token URL"), required=False, max_length=500, assume_scheme="https"
    )
    oauth_service_account = forms.CharField(
        label=_("Service account key (JSON)"),
        required=False,
        widget=SecretTextarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}),
    )
    make_default = forms.BooleanField(
        label=_("Default configuration"),
        required=False,
        help_text=_("Mails that name no configuration are sent through the default."),
    )

    class Meta:
        model = SmtpConfiguration
        fields = EDITABLE_FIELDS

    def prepare_fields(self):
        instance = self.instance
        # Belt and braces: the widgets render no value, and there is none to render.
        for name in SECRET_FIELDS:
            self.initial.pop(name, None)
        if instance.pk and instance.has_password:
            self.fields["password"].help_text = _(
                "A password is stored. Leave blank to keep it, or enter a new one to replace it."
            )
        else:
            self.fields["password"].help_text = _("Stored encrypted; it is never shown again.")
            del self.fields["clear_password"]
        self.fields["username"].help_text = _(
            "Password: the login name. OAuth: the mailbox to send as (Microsoft 365: its "
            "address, which the app needs rights on in Exchange Online; Google: the user "
            "the service account acts for)."
        )
        # Forms posted before there was a choice (scripts, old pages) mean a password.
        self.fields["auth_method"].required = False
        self.fields["auth_method"].help_text = _(
            "Microsoft switches password sign-in to Exchange Online off: use OAuth 2.0 there."
        )
        stored = _("Stored: leave blank to keep it, or enter a new one to replace it.")
        self.fields["oauth_client_secret"].help_text = (
            stored
            if instance.pk and instance.oauth_client_secret
            else _(
                "Microsoft: app registration → Certificates & secrets → Client secrets, the "
                "“Value” (not the “Secret ID”), shown only right after it was created. Other "
                "providers: the client secret of the application. Stored encrypted; never "
                "shown again."
            )
        )
        self.fields["oauth_certificate"].help_text = (
            stored
            if instance.pk and instance.oauth_certificate
            else _(
                "PEM text with the private key and the certificate whose public part is "
                "uploaded under Certificates & secrets → Certificates. Stored encrypted; "
                "never shown again."
            )
        )
        self.fields["oauth_service_account"].help_text = (
            stored
            if instance.pk and instance.oauth_service_account
            else _(
                "Google Cloud console → IAM & Admin → Service accounts → Keys → Add key "
                "(JSON): paste the file's content. Then, in the Google Admin console under "
                "Security → API controls → Domain-wide delegation, allow the service "
                "account's client ID the scope https://mail.google.com/. Stored encrypted; "
                "never shown again."
            )
        )
        for name in ("oauth_client_secret", "oauth_certificate"):
            if not (instance.pk and getattr(instance, name)):
                del self.fields[f"clear_{name}"]
        if instance.pk and instance.is_default:
            self.fields["make_default"].initial = True
            self.fields["make_default"].disabled = True
            self.fields["make_default"].help_text = _(
                "This is the default. To change that, make another configuration the default."
            )
        if not instance.pk and not SmtpConfiguration.objects.exists():
            self.fields["make_default"].initial = True
            self.fields["make_default"].disabled = True
            self.fields["make_default"].help_text = _(
                "The first configuration is always the default."
            )

    def build_layout(self):
        return Layout(
            Fieldset(
                _("Server"),
                "name",
                "make_default",
                "mailer",
                Div(
                    Div("host", css_class="col-md-8"),
                    Div("port", css_class="col-md-4"),
                    css_class="row",
                ),
                "sendmail_path",
            ),
            Fieldset(_("Security"), "security", "verify_certificate", "timeout"),
            Fieldset(
                _("Authentication"),
                "smtp_auth",
                Div("auth_method", data_auth_methods="password microsoft google oauth2"),
                Div("username", data_auth_methods="password microsoft google oauth2"),
                Div(
                    Field("password"),
                    *self._present("clear_password"),
                    data_auth_methods="password",
                ),
                Div("oauth_tenant_id", data_auth_methods="microsoft"),
                Div("oauth_client_id", data_auth_methods="microsoft oauth2"),
                Div(
                    "oauth_client_secret",
                    *self._present("clear_oauth_client_secret"),
                    data_auth_methods="microsoft oauth2",
                ),
                Div(
                    "oauth_certificate",
                    *self._present("clear_oauth_certificate"),
                    data_auth_methods="microsoft",
                ),
                Div("oauth_service_account", data_auth_methods="google"),
                Div("oauth_token_url", "oauth_scope", data_auth_methods="oauth2"),
                css_id="authentication",
            ),
            Fieldset(
                _("Sending"),
                "from_email",
                Div(
                    Div("rate_limit_per_minute", css_class="col-md-6"),
                    Div("rate_limit_per_hour", css_class="col-md-6"),
                    css_class="row",
                ),
                Div(
                    Div("max_connections", css_class="col-md-6"),
                    Div("max_messages_per_connection", css_class="col-md-6"),
                    css_class="row",
                ),
            ),
        )

    def _present(self, name: str) -> list[str]:
        return [name] if name in self.fields else []

    def clean_auth_method(self):
        return self.cleaned_data.get("auth_method") or AuthMethod.PASSWORD

    def clean_oauth_certificate(self):
        value = self.cleaned_data.get("oauth_certificate", "").strip()
        if value:
            try:
                validate_certificate(value)
            except OAuthSetupError as exc:
                raise forms.ValidationError(str(exc)) from None
        return value

    def clean_oauth_service_account(self):
        value = self.cleaned_data.get("oauth_service_account", "").strip()
        if value:
            try:
                validate_service_account(value)
            except OAuthSetupError as exc:
                raise forms.ValidationError(str(exc)) from None
        return value

    def clean(self):
        cleaned = super().clean()
        preset = PRESETS.get(cleaned.get("auth_method"))
        if cleaned.get("smtp_auth") and preset and not cleaned.get("host"):
            # What the script fills in, for a browser without it.
            cleaned["host"], cleaned["port"], cleaned["security"] = preset
        return cleaned

    def _post_clean(self):
        # Resolve the effective secrets before the model validates them (each method needs
        # its own): a typed one replaces, "remove" empties, blank keeps the stored one.
        typed = []
        for name in SECRET_FIELDS:
            new_value = self.cleaned_data.get(name, "")
            if new_value:
                effective = new_value
                typed.append(name)
            elif self.cleaned_data.get(f"clear_{name}"):
                effective = ""
            else:
                effective = getattr(self.instance, name) if self.instance.pk else ""
            self.cleaned_data[name] = effective
        super()._post_clean()
        if self.errors:
            # The browser drops a typed secret when the form comes back; say so.
            for name in typed:
                if name == "password":
                    self.add_error(name, _("Enter the new password again."))
                else:
                    self.add_error(name, _("Enter it again: it is not shown after an error."))

    def service_values(self) -> dict:
        return {
            name: self.cleaned_data[name] for name in EDITABLE_FIELDS if name in self.cleaned_data
        }


class DuplicateForm(CrispyFormMixin, forms.Form):
    submit_label = _("Duplicate")

    name = forms.CharField(label=_("Name of the copy"), max_length=100)
    copy_password = forms.BooleanField(
        label=_("Copy the stored password"),
        required=False,
        help_text=_("Otherwise the copy has no password; you can enter one below or later."),
    )
    password = forms.CharField(
        label=_("Password for the copy"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    def clean_name(self):
        name = self.cleaned_data["name"]
        if SmtpConfiguration.objects.filter(name=name).exists():
            raise forms.ValidationError(_("A configuration with this name already exists."))
        return name


class ConnectionTestForm(CrispyFormMixin, forms.Form):
    submit_label = _("Test connection")

    sender = forms.EmailField(
        label=_("Sender for the probe"), help_text=_("Used in MAIL FROM; no mail is sent.")
    )
    recipient = forms.EmailField(
        label=_("Recipient for the probe"), help_text=_("Used in RCPT TO; no mail is sent.")
    )


class TestMailForm(CrispyFormMixin, forms.Form):
    submit_label = _("Send test mail")

    sender = forms.EmailField(label=_("Sender"))
    recipient = forms.EmailField(
        label=_("Recipient"), help_text=_("A real mail is sent to this address.")
    )


class DeleteForm(forms.Form):
    """Asks for the successor when the default configuration is deleted or deactivated:
    an active configuration."""

    successor = forms.ModelChoiceField(
        label=_("New default configuration"),
        queryset=SmtpConfiguration.objects.none(),
        required=True,
    )

    def __init__(self, *args, configuration: SmtpConfiguration, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["successor"].queryset = SmtpConfiguration.objects.filter(
            is_active=True
        ).exclude(pk=configuration.pk)
