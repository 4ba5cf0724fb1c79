"""Form widgets shared by the sections."""

import json
from collections.abc import Callable, Iterable

from django import forms
from django.core.exceptions import ValidationError
from django.forms.widgets import Script
from django.utils.translation import gettext_lazy as _

# What a picker shows for tokens it already holds: the entries the search endpoint answers
# with ({"token", "label", "kind", "kind_label", "detail"}), in the tokens' order.
Describe = Callable[[str], Iterable[dict]]


class RecipientPicker(forms.TextInput):
    """The one recipient picker (compose, actions, template preview): a text field of
    comma-separated tokens ("customer:5, list:3, a@example.com") that
    static/js/recipient-picker.js turns into chips with search-as-you-type. Without
    JavaScript it stays the plain text field, and the submitted value is the same.

    The section's form names the search endpoint and how to label stored tokens
    (`configure`): calmail.common knows neither. `single` keeps one token at most."""

    def __init__(self, attrs=None, *, single: bool = False):
        super().__init__(attrs)
        self.single = single
        self.search_url = ""
        self.describe: Describe | None = None

    class Media:
        js = [Script("js/recipient-picker.js", defer=True)]

    def configure(self, *, search_url: str, describe: Describe | None = None) -> None:
        self.search_url = search_url
        self.describe = describe

    def format_value(self, value):
        if isinstance(value, list | tuple):
            value = ", ".join(value)
        return super().format_value(value)

    def choices_for(self, text: str) -> list[dict]:
        if not text or self.describe is None:
            return []
        try:
            return list(self.describe(text))
        except ValidationError:
            # Bad tokens show as typed; the field's error explains them.
            return []

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        widget_attrs = context["widget"]["attrs"]
        widget_attrs.update(
            {
                "data-recipient-picker": self.search_url,
                "data-choices": json.dumps(
                    self.choices_for(context["widget"]["value"] or ""), ensure_ascii=False
                ),
                # The script's own words, translated here: it has no catalogue.
                "data-remove-label": str(_("Remove")),
                "autocomplete": "off",
            }
        )
        if self.single:
            widget_attrs["data-single"] = ""
        return context
