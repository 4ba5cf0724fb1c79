"""Reads of the import: who may import, runs, templates, a run's progress and rejections."""

from __future__ import annotations

from collections.abc import Iterator

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from calmail.common.roles import is_administrator
from calserver.selectors import managed_kinds
from imports.importers import fields_for
from imports.models import ImportKind, ImportRun, ImportStatus, MappingTemplate

IMPORT_PERMISSION = "imports.add_importrun"
# The rejected rows shown on the page; all of them are in the download.
REJECTIONS_SHOWN = 200


def may_import(user: User | AnonymousUser) -> bool:
    """Imports are for administrators: the permission and the role (as Users & teams)."""
    return bool(
        user.is_authenticated and user.has_perm(IMPORT_PERMISSION) and is_administrator(user)
    )


# The calServer kinds each import writes: the customers import brings their contacts too.
CALSERVER_KINDS: dict[str, tuple[str, ...]] = {
    ImportKind.CUSTOMERS: ("customers", "contacts"),
    ImportKind.LOCATIONS: ("locations",),
    ImportKind.INSTRUMENTS: ("instruments",),
    ImportKind.TICKETS: ("tickets",),
    ImportKind.USERS: (),
}


def managed_by_calserver(*, kind: str, managed: set[str] | None = None) -> bool:
    """Does calServer manage what an import of this kind writes? Then the import is
    refused: a file would be overwritten by the next sync, or overwrite calServer's data.
    `managed` saves the query when several kinds are asked at once."""
    if managed is None:
        managed = managed_kinds()
    return bool(set(CALSERVER_KINDS.get(kind, ())) & managed)


def kinds_managed_by_calserver() -> set[str]:
    """The import kinds refused because calServer manages them (one query)."""
    managed = managed_kinds()
    return {kind for kind in CALSERVER_KINDS if managed_by_calserver(kind=kind, managed=managed)}


def run_list(*, limit: int = 20) -> QuerySet[ImportRun]:
    return ImportRun.objects.select_related("created_by", "mapping").defer(
        "content", "rejections", "headers", "mapping_used"
    )[:limit]


def templates_for(*, kind: str) -> QuerySet[MappingTemplate]:
    return MappingTemplate.objects.filter(kind=kind)


def run_detail(*, pk: int) -> ImportRun:
    return ImportRun.objects.select_related("created_by", "mapping").defer("content").get(pk=pk)


def run_progress(*, pk: int) -> dict:
    """The figures the progress bar polls: small, one query."""
    status, done, total, error = ImportRun.objects.values_list(
        "status", "rows_done", "rows_total", "error"
    ).get(pk=pk)
    return {
        "status": status,
        "running": status in (ImportStatus.ANALYSING, ImportStatus.IMPORTING),
        "rows_done": done,
        "rows_total": total,
        "error": _(error) if error else "",
    }


def rejection_reason(rejection: dict, *, kind: str) -> str:
    """A rejected row's reason in the reader's language (stored as msgid and params, the
    field by its name)."""
    params = dict(rejection.get("params", {}))
    if "field" in params:
        labels = {field.name: field.label for field in fields_for(kind)}
        params["field"] = str(labels.get(params["field"], params["field"]))
    for text in (_(rejection["message"]), rejection["message"]):
        try:
            return text % params
        except (KeyError, TypeError, ValueError):
            continue
    return rejection["message"]


def rejections_shown(run: ImportRun) -> list[dict]:
    return [
        {**rejection, "reason": rejection_reason(rejection, kind=run.kind)}
        for rejection in run.rejections[:REJECTIONS_SHOWN]
    ]


def rejected_rows(run: ImportRun) -> Iterator[list]:
    """The header and every rejected row: line, reason, then the file's own cells."""
    yield [_("Line"), _("Reason"), *run.headers]
    for rejection in run.rejections:
        yield [
            rejection["line"],
            rejection_reason(rejection, kind=run.kind),
            *rejection["values"],
        ]
