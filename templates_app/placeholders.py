"""The placeholders a template can use, per template type, as the form lists them."""

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from templates_app.reports import registry


@dataclass(frozen=True)
class Placeholder:
    name: str
    usage: str
    description: Promise | str


COMMON = (
    Placeholder(
        "recipient",
        "{{ recipient.name }}",
        _(
            "The recipient: name, email, language, owner (the user or customer it belongs to), address_type."
        ),
    ),
    Placeholder(
        "customer",
        "{{ customer.name }}",
        _(
            "The recipient's customer: number, name, city. Empty unless the mail goes to a customer."
        ),
    ),
    Placeholder(
        "user",
        "{{ user.name }}",
        _("The recipient's user: name, email. Empty unless the mail goes to a user."),
    ),
    Placeholder("count", "{{ count }}", _("Number of rows in the report.")),
    Placeholder(
        "rows",
        "{% for row in rows %}…{% endfor %}",
        _("The report's rows, each with the columns listed below."),
    ),
    Placeholder(
        "report",
        "{{ report.title }}",
        _("The report: title, filter (as text), columns (each with key and label)."),
    ),
    Placeholder(
        "link",
        "{{ link }}",
        _(
            "Download link of the report when it is sent as a link (filled in where the sender provides it)."
        ),
    ),
    Placeholder("today", '{{ today|date:"SHORT_DATE_FORMAT" }}', _("The date the mail is made.")),
    Placeholder(
        "due_window_days", "{{ due_window_days }}", _("The template's due window in days.")
    ),
    Placeholder(
        "due_until",
        '{{ due_until|date:"SHORT_DATE_FORMAT" }}',
        _("The last day of the due window."),
    ),
    Placeholder("sender", "{{ sender.name }}", _("The sender: name, email.")),
    Placeholder("template", "{{ template.name }}", _("The template: name, description.")),
)

NAMES = frozenset(placeholder.name for placeholder in COMMON)


def placeholder_names(template_type: str | None = None) -> frozenset[str]:
    """The names a template of the type may use (the same top-level names for every
    type; the row columns differ)."""
    return NAMES


def row_columns(template_type: str) -> list[dict]:
    """The row keys of the type's reports, for the form's placeholder list."""
    return [
        {
            "report": str(report.title),
            "columns": [
                {"key": column.key, "label": str(column.label)} for column in report.columns
            ],
        }
        for report in registry.reports_for_type(template_type)
    ]


def placeholder_help() -> dict:
    """Everything the form shows beside the editor: common placeholders, and the row
    columns per template type."""
    return {
        "common": COMMON,
        "types": [
            {"value": value, "label": label, "reports": row_columns(value)}
            for value, label in registry.TemplateType.choices
        ],
    }
