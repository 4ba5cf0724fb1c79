from crispy_forms.layout import Fieldset, Layout
from django import forms
from django.utils.translation import gettext_lazy as _

from calmail.common.forms import CrispyFormMixin
from calserver.mapping import KIND_LABELS, KINDS, TARGETS, mapping_text, parse_mapping_text, preset
from calserver.models import ApiVersion, CalServerConnection

MODEL_FIELDS = [
    "base_url",
    "api_version",
    "username",
    "credential_transport",
    "email",
    "device_name",
    "page_size",
    "limit_param",
    "offset_param",
    "page_number_param",
    "page_size_param",
    "timeout",
    "sync_enabled",
    "sync_interval_minutes",
]
SECRETS = ("password", "api_key")


def _secret_input() -> forms.PasswordInput:
    return forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})


class ConnectionForm(CrispyFormMixin, forms.ModelForm):
    """The connection's settings. Secrets are write-only: never rendered, blank keeps
    the stored one. Paths and mappings are a line each, so an error names its line."""

    base_url = forms.URLField(
        label=_("Base URL"),
        max_length=300,
        assume_scheme="https",
        help_text=_("e.g. https://firma.calserver.de"),
    )
    password = forms.CharField(
        label=_("Password"), required=False, strip=False, widget=_secret_input()
    )
    clear_password = forms.BooleanField(label=_("Remove the stored password"), required=False)
    api_key = forms.CharField(label=_("API key"), required=False, widget=_secret_input())
    clear_api_key = forms.BooleanField(label=_("Remove the stored API key"), required=False)
    load_preset = forms.BooleanField(
        label=_("Replace paths and field mappings with the presets of the API version"),
        required=False,
    )

    class Meta:
        model = CalServerConnection
        fields = MODEL_FIELDS

    def prepare_fields(self):
        instance = self.instance
        stored = _("Stored: leave blank to keep it, or enter a new one to replace it.")
        fresh = _("Stored encrypted; it is never shown again.")
        self.fields["password"].help_text = _(
            "v1: the API user's password. v2: the password of the API e-mail address."
        )
        for name in SECRETS:
            self.initial.pop(name, None)
            has_it = instance.pk and getattr(instance, name)
            self.fields[
                name
            ].help_text = f"{self.fields[name].help_text} {stored if has_it else fresh}".strip()
            if not has_it:
                del self.fields[f"clear_{name}"]
        self.fields["api_key"].help_text = (
            _("v1 only: generated in calServer's user profile, API key section.")
            + " "
            + (stored if instance.pk and instance.api_key else fresh)
        )
        self.fields["username"].help_text = _("v1 only.")
        self.fields["email"].help_text = _("v2 only: the e-mail address the token is issued to.")
        self.fields["device_name"].help_text = _("v2 only: names calmail's token in calServer.")
        self.fields["credential_transport"].help_text = _(
            "v1 only. Headers unless a proxy in front of calServer drops them (Nginx drops "
            "header names with underscores): query parameters get through, but end up in "
            "the server's access log."
        )
        for kind in KINDS:
            self.fields[f"path_{kind}"] = forms.CharField(
                label=_("Path: %(kind)s") % {"kind": KIND_LABELS[kind]},
                required=False,
                max_length=300,
                initial=instance.path_of(kind),
                help_text=_("Empty: not synced."),
            )
            self.fields[f"mapping_{kind}"] = forms.CharField(
                label=_("Field mapping: %(kind)s") % {"kind": KIND_LABELS[kind]},
                required=False,
                initial=mapping_text(instance.mapping_of(kind)),
                widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false"}),
                help_text=_(
                    "One line each: calmail field = calServer field (a code like I4201 or a "
                    "path like attributes.asset_number). calmail fields: %(fields)s."
                )
                % {"fields": ", ".join(TARGETS[kind])},
            )

    def build_layout(self):
        kinds = [name for kind in KINDS for name in (f"path_{kind}", f"mapping_{kind}")]
        connection = ["base_url", "api_version", "timeout"]
        v1 = ["username", "password", "clear_password", "api_key", "clear_api_key"]
        v1 += ["credential_transport"]
        v2 = ["email", "device_name"]
        paging = ["page_size", "limit_param", "offset_param", "page_number_param"]
        paging += ["page_size_param"]
        schedule = ["sync_enabled", "sync_interval_minutes"]
        present = set(self.fields)
        return Layout(
            Fieldset(_("Connection"), *[f for f in connection if f in present]),
            Fieldset(_("API v1 sign-in"), *[f for f in v1 if f in present]),
            Fieldset(_("API v2 sign-in"), *[f for f in v2 if f in present]),
            Fieldset(_("Resources and field mapping"), "load_preset", *kinds),
            Fieldset(_("Paging"), *paging),
            Fieldset(_("Schedule"), *schedule),
        )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("load_preset"):
            # What was typed is replaced, so it need not be valid.
            chosen = preset(cleaned.get("api_version") or ApiVersion.V1)
            self.paths, self.mapping = chosen["paths"], chosen["mapping"]
            return cleaned
        paths: dict[str, str] = {}
        mapping: dict[str, dict[str, str]] = {}
        for kind in KINDS:
            path = (cleaned.get(f"path_{kind}") or "").strip()
            if path and not path.startswith("/"):
                self.add_error(
                    f"path_{kind}", _("A resource path starts with /, like /api/inventory.")
                )
            paths[kind] = path
            parsed, errors = parse_mapping_text(kind, cleaned.get(f"mapping_{kind}") or "")
            for error in errors:
                self.add_error(f"mapping_{kind}", error)
            if path and "external_id" not in parsed and not errors:
                self.add_error(
                    f"mapping_{kind}",
                    _("Map external_id (calServer's id of the record): records are matched by it."),
                )
            mapping[kind] = parsed
        self.paths = paths
        self.mapping = mapping
        return cleaned

    def _post_clean(self):
        # The model's clean (which needs the test for the schedule) runs in the service,
        # once the service knows whether the changes void the test.
        pass

    def service_values(self) -> dict:
        values = {name: self.cleaned_data[name] for name in MODEL_FIELDS}
        values["paths"] = self.paths
        values["mapping"] = self.mapping
        return values

    def service_secrets(self) -> dict:
        """New value, "" to remove, None to keep."""
        secrets = {}
        for name in SECRETS:
            value = self.cleaned_data.get(name) or ""
            if self.cleaned_data.get(f"clear_{name}"):
                secrets[name] = ""
            else:
                secrets[name] = value or None
        return secrets


class ConfirmForm(forms.Form):
    """The POST of a button (test, sync now): CSRF only."""
