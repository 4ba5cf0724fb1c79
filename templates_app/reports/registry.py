"""The registry of report providers, keyed by report key and grouped by template type."""

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from django.db import models
from django.utils.functional import Promise

from inventory.selectors import Scope


class TemplateType(models.TextChoices):
    """What a template is about; each type has its own reports (5.6.3 "Typ")."""

    SUPPORT = "support", "SUPPORT"
    INVENTORY = "inventory", "INVENTORY"
    LOCATION = "location", "LOCATION"


class ColumnKind(StrEnum):
    TEXT = "text"
    DATE = "date"
    NUMBER = "number"


@dataclass(frozen=True)
class Column:
    """One column of a report: the row key, its translatable header, how to format it,
    and a width hint in characters for Excel and PDF."""

    key: str
    label: Promise | str
    kind: ColumnKind = ColumnKind.TEXT
    width: int = 16


@dataclass(frozen=True)
class ReportData:
    """A built report: rows are plain dicts keyed by the columns' keys, with str, int,
    datetime.date or None values. Built before any export, so an empty report is known
    before a file is made."""

    key: str
    title: str
    columns: tuple[Column, ...]
    rows: list[dict]
    due_filter: str
    window_days: int
    today: datetime.date
    scope: Scope
    parameters: dict = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.rows)

    @property
    def is_empty(self) -> bool:
        return not self.rows

    def headers(self) -> list[str]:
        """The column headers in the active language."""
        return [str(column.label) for column in self.columns]


class Report:
    """Base class of report providers. Subclasses set the class attributes and implement
    build_rows(); they read data only through selectors, never from a request."""

    key: str = ""
    template_type: str = ""
    title: Promise | str = ""
    description: Promise | str = ""
    columns: tuple[Column, ...] = ()

    def build_rows(
        self, *, scope: Scope, due_filter: str, window_days: int, today: datetime.date
    ) -> Iterable[dict]:
        raise NotImplementedError

    def build(
        self, *, scope: Scope, due_filter: str, window_days: int, today: datetime.date
    ) -> ReportData:
        """The report's rows for a recipient's scope and a template's due filter.

        Call it inside translation.override(language): headers and texts in the rows
        (e.g. "overdue") come out in the active language.
        """
        rows = list(
            self.build_rows(
                scope=scope, due_filter=due_filter, window_days=window_days, today=today
            )
        )
        return ReportData(
            key=self.key,
            title=str(self.title),
            columns=self.columns,
            rows=rows,
            due_filter=due_filter,
            window_days=window_days,
            today=today,
            scope=scope,
            parameters={
                "report": self.key,
                "filter": due_filter,
                "due_window_days": window_days,
                "scope": str(scope),
            },
        )

    def __str__(self):
        return str(self.title)


class ReportNotFound(KeyError):
    pass


_registry: dict[str, Report] = {}


def register(report: Report, *, replace: bool = False) -> Report:
    """Add a provider. Keys are unique; replace=True swaps an existing one (for an
    installation that overrides a built-in report)."""
    if not report.key or report.template_type not in TemplateType.values:
        raise ValueError(f"A report needs a key and a template type, got {report!r}")
    if report.key in _registry and not replace:
        raise ValueError(f"A report with key {report.key!r} is already registered")
    _registry[report.key] = report
    return report


def unregister(key: str) -> None:
    _registry.pop(key, None)


def get(key: str) -> Report:
    try:
        return _registry[key]
    except KeyError:
        raise ReportNotFound(key) from None


def all_reports() -> list[Report]:
    return list(_registry.values())


def reports_for_type(template_type: str) -> list[Report]:
    return [report for report in _registry.values() if report.template_type == template_type]


def report_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """Choices grouped by template type, for a select with <optgroup>s."""
    return [
        (label, [(report.key, str(report.title)) for report in reports_for_type(value)])
        for value, label in TemplateType.choices
        if reports_for_type(value)
    ]


__all__ = [
    "Column",
    "ColumnKind",
    "Report",
    "ReportData",
    "ReportNotFound",
    "TemplateType",
    "all_reports",
    "get",
    "register",
    "report_choices",
    "reports_for_type",
    "unregister",
]
