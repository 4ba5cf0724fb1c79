from crispy_forms.layout import Div, Field, Fieldset, Layout
from django import forms
from django.utils.translation import gettext_lazy as _

from calmail.common.forms import CrispyFormMixin
from smtpconfig.models import SmtpConfiguration
from smtpconfig.services import EDITABLE_FIELDS


class SmtpConfigurationForm(CrispyFormMixin, forms.ModelForm):
    """Create/edit. The password is write-only: never rendered, blank keeps the stored one."""

    password = forms.CharField(
        label=_("Password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    clear_password = forms.BooleanField(label=_("Remove the stored password"), required=False)
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
        if instance.pk and instance.has_password:
            self.fields["password"].help_text = _(
                "A password is stored. Leave blank to keep it, or enter a new one to replace it."
            )
        else:
            self.fields["password"].help_text = _("Stored encrypted; it is never shown again.")
            del self.fields["clear_password"]
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
                "username",
                Field("password"),
                *(["clear_password"] if "clear_password" in self.fields else []),
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

    def _post_clean(self):
        # Resolve the effective password before the model validates it (SMTP auth needs one).
        new_password = self.cleaned_data.get("password", "")
        if new_password:
            effective = new_password
        elif self.cleaned_data.get("clear_password"):
            effective = ""
        else:
            effective = self.instance.password if self.instance.pk else ""
        self.cleaned_data["password"] = effective
        super()._post_clean()
        if new_password and self.errors:
            # The browser drops a typed password when the form comes back; say so.
            self.add_error("password", _("Enter the new password again."))

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
    """Asks for the successor when the default configuration is deleted."""

    successor = forms.ModelChoiceField(
        label=_("New default configuration"),
        queryset=SmtpConfiguration.objects.none(),
        required=True,
    )

    def __init__(self, *args, configuration: SmtpConfiguration, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["successor"].queryset = SmtpConfiguration.objects.exclude(pk=configuration.pk)
