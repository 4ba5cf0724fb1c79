"""The form pattern: crispy-forms with Bootstrap 5, one submit button, a cancel link."""

from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Submit
from django.core.exceptions import ValidationError
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _


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
