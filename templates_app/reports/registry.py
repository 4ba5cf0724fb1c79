"""The registry of report providers, keyed by report key and grouped by template type.

A fan-out builds one report per recipient. Report.build_many() builds the reports of many
scopes with one query where the provider can (build_rows_many()), and inside
reports_built_ahead() Report.build() hands out those reports instead of querying again:
so the one render path (templates_app.services.render_for_recipient) serves a chunk of
recipients with a query per chunk, not one per recipient.
"""

import collections
import contextlib
import datetime
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.db import models
from django.utils import translation
from django.utils.functional import Promise

from inventory.selectors import RecordKind, Scope, ScopeKind


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
    # Texts made once per language (the headers, the filter's description): a render and
    # its export ask for them several times, and the reports of one build_many() share
    # this dict. Not an argument: dataclasses.replace() starts with an empty one.
    texts: dict[tuple[str, str | None], Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def count(self) -> int:
        return len(self.rows)

    @property
    def is_empty(self) -> bool:
        return not self.rows

    def headers(self) -> list[str]:
        """The column headers in the active language."""
        key = ("headers", translation.get_language())
        headers = self.texts.get(key)
        if headers is None:
            headers = self.texts[key] = tuple(str(column.label) for column in self.columns)
        return list(headers)


class Report:
    """Base class of report providers. Subclasses set the class attributes and implement
    build_rows(); they read data only through selectors, never from a request."""

    key: str = ""
    template_type: str = ""
    title: Promise | str = ""
    description: Promise | str = ""
    columns: tuple[Column, ...] = ()
    # Whose records the rows are (inventory.selectors.RecordKind), so that an audience
    # can find the customers and users with matching rows; None: the report cannot say.
    records: RecordKind | None = None

    def build_rows(
        self, *, scope: Scope, due_filter: str, window_days: int, today: datetime.date
    ) -> Iterable[dict]:
        raise NotImplementedError

    def count_rows_many(
        self,
        *,
        scopes: Sequence[Scope],
        due_filter: str,
        window_days: int,
        today: datetime.date,
    ) -> dict[Scope, int]:
        """How many rows each scope's report has, by scope (a preview's figures).

        This default builds each distinct scope's rows and counts them; providers
        override it with COUNT queries."""
        return {
            scope: sum(
                1
                for _row in self.build_rows(
                    scope=scope, due_filter=due_filter, window_days=window_days, today=today
                )
            )
            for scope in dict.fromkeys(scopes)
        }

    def build_rows_many(
        self,
        *,
        scopes: Sequence[Scope],
        due_filter: str,
        window_days: int,
        today: datetime.date,
    ) -> dict[Scope, list[dict]]:
        """The rows of several scopes (repeated when several recipients share one), as
        build_rows() gives them for each, by scope. A scope left out is built by build()
        when it is asked for.

        Providers override it to read the rows of many scopes with one query (and may
        leave scopes out, e.g. to bound the rows held at once). This default saves no
        query: it builds only the scopes that occur more than once, so that their
        recipients share one report.
        """
        occurrences = collections.Counter(scopes)
        return {
            scope: list(
                self.build_rows(
                    scope=scope, due_filter=due_filter, window_days=window_days, today=today
                )
            )
            for scope, count in occurrences.items()
            if count > 1
        }

    def build(
        self, *, scope: Scope, due_filter: str, window_days: int, today: datetime.date
    ) -> ReportData:
        """The report's rows for a recipient's scope and a template's due filter.

        Call it inside translation.override(language): headers and texts in the rows
        (e.g. "overdue") come out in the active language. Inside reports_built_ahead(),
        a report built ahead for the same scope, filter, window, day and language is
        returned instead (the same object to every caller: do not change it).
        """
        if scope.kind == ScopeKind.NONE:
            # No report for this recipient: no rows, whatever the provider would read.
            return self._data(
                scope=scope, rows=[], due_filter=due_filter, window_days=window_days, today=today
            )
        ahead = _built_ahead.get()
        if ahead is not None:
            report = ahead.get(
                self, scope=scope, due_filter=due_filter, window_days=window_days, today=today
            )
            if report is not None:
                return report
        rows = list(
            self.build_rows(
                scope=scope, due_filter=due_filter, window_days=window_days, today=today
            )
        )
        return self._data(
            scope=scope, rows=rows, due_filter=due_filter, window_days=window_days, today=today
        )

    def build_many(
        self,
        *,
        scopes: Sequence[Scope],
        due_filter: str,
        window_days: int,
        today: datetime.date,
    ) -> dict[Scope, ReportData]:
        """build() for several scopes, with as few queries as the provider can
        (build_rows_many()). Scopes the provider left out are missing from the result.
        Call it inside translation.override(language), like build()."""
        # Scopes without a report never reach the provider (build() answers them alike).
        rows_by_scope = self.build_rows_many(
            scopes=[scope for scope in scopes if scope.kind != ScopeKind.NONE],
            due_filter=due_filter,
            window_days=window_days,
            today=today,
        )
        rows_by_scope.update({scope: [] for scope in scopes if scope.kind == ScopeKind.NONE})
        texts: dict[tuple[str, str | None], Any] = {}
        return {
            scope: self._data(
                scope=scope,
                rows=rows,
                due_filter=due_filter,
                window_days=window_days,
                today=today,
                texts=texts,
            )
            for scope, rows in rows_by_scope.items()
        }

    def _data(
        self,
        *,
        scope: Scope,
        rows: list[dict],
        due_filter: str,
        window_days: int,
        today: datetime.date,
        texts: dict | None = None,
    ) -> ReportData:
        report = ReportData(
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
        if texts is not None:
            object.__setattr__(report, "texts", texts)
        return report

    def __str__(self):
        return str(self.title)


class BuiltAhead:
    """Reports built ahead for many scopes, which Report.build() hands out inside
    reports_built_ahead() (keyed by provider, scope, filter, window, day and the language
    they were built in)."""

    def __init__(self) -> None:
        self._reports: dict[tuple, ReportData] = {}

    def add(
        self,
        provider: Report,
        *,
        scopes: Sequence[Scope],
        due_filter: str,
        window_days: int,
        today: datetime.date,
    ) -> None:
        """Build the reports of scopes in the active language (provider.build_many())."""
        language = translation.get_language()
        built = provider.build_many(
            scopes=scopes, due_filter=due_filter, window_days=window_days, today=today
        )
        for scope, report in built.items():
            self._reports[(provider, scope, due_filter, window_days, today, language)] = report

    def get(
        self,
        provider: Report,
        *,
        scope: Scope,
        due_filter: str,
        window_days: int,
        today: datetime.date,
    ) -> ReportData | None:
        key = (provider, scope, due_filter, window_days, today, translation.get_language())
        return self._reports.get(key)


_built_ahead: ContextVar[BuiltAhead | None] = ContextVar(
    "calmail_reports_built_ahead", default=None
)


@contextlib.contextmanager
def reports_built_ahead() -> Iterator[BuiltAhead]:
    """Within the block, Report.build() returns the reports added to the BuiltAhead it
    yields (when scope, filter, window, day and language match) instead of building them
    again. Keep the block to one chunk of a fan-out: its reports stay in memory until it
    ends."""
    ahead = BuiltAhead()
    token = _built_ahead.set(ahead)
    try:
        yield ahead
    finally:
        _built_ahead.reset(token)


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
    "BuiltAhead",
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
    "reports_built_ahead",
    "reports_for_type",
    "unregister",
]
