"""How the Log shows what it stores: parameters of messages and details, in the reader's
language and time zone.

Entries keep their parameters as written (a choice's key, a time as ISO 8601 text in
UTC), so they stay searchable and independent of any language. When shown, a parameter
is formatted by its name (the names are few and fixed, which keeps old entries
readable without a migration):

- a name in DATETIME_PARAMS holding ISO 8601 text (or a list of them) becomes a local
  date and time in the reader's format;
- a name registered with register_param_choices (by the app that owns the choices, in
  its AppConfig.ready()) shows the choice's label instead of its key;
- a nested {"msgid", "params"} (calmail.common.i18n) is translated.

Anything else, and any value that does not parse, is shown as stored.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format
from django.utils.translation import gettext

from calmail.common.i18n import render_stored

DATETIME_PARAMS = frozenset({"slot", "slots", "time", "since", "until", "at", "due_at"})

_CHOICES: dict[str, dict[str, Any]] = {}


def register_param_choices(name: str, choices: Iterable[tuple[str, Any]]) -> None:
    """Show the parameter `name` by its choice label (e.g. "trigger" by Trigger's)."""
    _CHOICES[name] = dict(choices)


def _local_datetime(value: str) -> str:
    try:
        moment = parse_datetime(value)
    except ValueError:
        moment = None
    if moment is None:
        return value
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return date_format(moment, "SHORT_DATETIME_FORMAT")


def shown_param(name: str, value: Any) -> Any:
    """One stored parameter as the reader sees it."""
    if isinstance(value, dict) and isinstance(value.get("msgid"), str):
        return render_stored(value)
    if name in _CHOICES and isinstance(value, str):
        label = _CHOICES[name].get(value)
        return str(label) if label is not None else value
    if name in DATETIME_PARAMS:
        if isinstance(value, str):
            return _local_datetime(value)
        if isinstance(value, list):
            return ", ".join(
                _local_datetime(item) if isinstance(item, str) else str(item) for item in value
            )
    return value


def shown_params(params: dict[str, Any]) -> dict[str, Any]:
    return {name: shown_param(name, value) for name, value in params.items()}


def as_text(value: Any) -> str:
    """A detail or changed value as plain text: lists joined, nested objects as
    "key: value", nothing as an em dash."""
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, datetime.datetime):
        return date_format(timezone.localtime(value), "SHORT_DATETIME_FORMAT")
    if isinstance(value, list):
        return "; ".join(as_text(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key}: {as_text(item)}" for key, item in value.items())
    return str(value)
