"""The form pattern: crispy-forms with Bootstrap 5, one submit button, a cancel link."""

from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Submit
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

NO_TEAM = _("You are not in any team yet — ask an administrator to add you to one.")


class CrispyFormMixin:
    """Gives a form a FormHelper: the layout from build_layout() (default: the fields in
    order), then the submit button and an optional cancel link."""

    submit_label = _("Save")

    def __init__(self, *args, cancel_url: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.prepare_fields()
        self.helper = FormHelper(self)
        self.helper.form_tag = True
        self.helper.attrs = {"novalidate": ""}
        layout = self.build_layout()
        if layout is not None:
            self.helper.layout = layout
        self.helper.add_input(Submit("submit", self.submit_label))
        if cancel_url:
            self.helper.layout.append(
                HTML(
                    format_html('<a class="btn btn-link" href="{}">{}</a>', cancel_url, _("Cancel"))
                )
            )

    def prepare_fields(self):
        """Adjust fields (labels, removal) before the layout is built from them."""

    def build_layout(self):
        return None


def add_service_errors(form, exc: ValidationError) -> None:
    """Put a service's ValidationError on the form: each error on its field if the form has
    that field, else on the form as a whole."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for name, errors in exc.error_dict.items():
        form.add_error(name if name in form.fields else None, errors)


def prepare_team_field(field, *, administrator: bool, empty_help) -> str:
    """Set up a form's owner-team field (its queryset already limited to the teams the
    user may choose) and return the alert the page shows above the form, or "".

    Administrators may leave it empty (`empty_help` says what that means) and are told
    where to create a team when there is none. Everyone else must choose one of their
    teams; a user in no team still gets the form, but the page and the field say why it
    cannot be saved, so nothing typed is lost on the way to an administrator."""
    has_choices = field.queryset.exists()
    if administrator:
        field.required = False
        field.help_text = (
            empty_help
            if has_choices
            else format_html(
                '{} {} <a href="{}">{}</a>',
                empty_help,
                _("There is no team yet."),
                reverse("accounts:team_create"),
                _("Create a team"),
            )
        )
        return ""
    field.required = True
    if has_choices:
        return ""
    field.error_messages = {**field.error_messages, "required": NO_TEAM}
    return NO_TEAM
