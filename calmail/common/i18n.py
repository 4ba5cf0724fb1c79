"""Texts stored now and translated when read: an English msgid plus its parameters.

A worker writes an error in no reader's language; storing the msgid and the parameters
(``DeferredText.as_json()``) lets every page render it in the language of whoever reads it
(``render_stored()``). A parameter may itself be a DeferredText (a hint inside an error):
it is stored as a nested {"msgid", "params"} and translated with its parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext


@dataclass(frozen=True)
class DeferredText:
    msgid: str
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        """The text in the active language."""
        return render_stored(self.as_json())

    def as_json(self) -> dict[str, Any]:
        return {
            "msgid": self.msgid,
            "params": {
                name: value.as_json() if isinstance(value, DeferredText) else value
                for name, value in self.params.items()
            },
        }

    def map_params(self, function) -> DeferredText:
        """The same text with function applied to every plain text parameter, nested ones
        too (the transport redacts server texts this way)."""
        return DeferredText(
            self.msgid,
            {
                name: value.map_params(function)
                if isinstance(value, DeferredText)
                else function(value)
                if isinstance(value, str)
                else value
                for name, value in self.params.items()
            },
        )


def _is_stored(value: object) -> bool:
    return isinstance(value, dict) and isinstance(value.get("msgid"), str)


def render_stored(data: object, fallback: str = "") -> str:
    """A stored {"msgid", "params"} in the active language; fallback when there is none
    (rows written before texts were stored this way)."""
    if not _is_stored(data):
        return fallback
    assert isinstance(data, dict)  # for the type checker: _is_stored said so
    msgid = data["msgid"]
    params = data.get("params") or {}
    if not params:
        return gettext(msgid) if msgid else ""
    shown = {
        name: render_stored(value) if _is_stored(value) else value for name, value in params.items()
    }
    # A translation whose placeholders do not fit must not break a page: the English text.
    for candidate in (gettext(msgid), msgid):
        try:
            return candidate % shown
        except (KeyError, TypeError, ValueError):
            continue
    return msgid
