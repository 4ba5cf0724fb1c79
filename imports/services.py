"""Writes of the import: upload, mapping, dry run, confirmed import, mapping templates.

The dry run and the import are one pass over the file each (imports.importers), in
batches; the dry run writes nothing but the run's counts, the import commits batch by
batch (a repeated import is harmless: every write is an upsert by natural key).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from imports.importers import BATCH_SIZE, IMPORTERS, Importer, Mapping
from imports.models import ImportRun, ImportStatus, MappingTemplate
from imports.reading import UnreadableFile, read_table
from imports.selectors import managed_by_calserver
from maillog.models import AuditAction, Category, Level
from maillog.services import log_audit, log_event

# The longest gap between two progress updates a reader of the page waits for.
PROGRESS_SECONDS = 1.0


# Where calServer manages a kind, its data comes from the sync only (issue 16).
MANAGED_BY_CALSERVER = gettext_noop(
    "Managed by calServer: import refused, changes come from calServer."
)


class ImportRefused(ValueError):
    """A run that cannot go on (wrong status, or a kind calServer manages); the message
    is a msgid for the user."""


def _refuse_managed(kind: str) -> None:
    if managed_by_calserver(kind=kind):
        raise ImportRefused(MANAGED_BY_CALSERVER)


@transaction.atomic
def run_create(
    *, kind: str, file_name: str, content: bytes, user: User, mapping: MappingTemplate | None
) -> ImportRun:
    """Store an upload; reads its header row at once, so an unreadable file is refused
    (UnreadableFile) before anything is stored, and so is an import of a kind calServer
    manages (ImportRefused)."""
    _refuse_managed(kind)
    table = read_table(content)
    run = ImportRun(
        kind=kind,
        file_name=file_name[:255],
        content=content,
        created_by=user,
        mapping=mapping,
        headers=table.headers,
        rows_total=table.rows_estimate,
    )
    if mapping is not None:
        run.mapping_used = mapping_of(mapping)
    run.full_clean(exclude=["content"])
    run.save()
    return run


def mapping_of(template: MappingTemplate) -> dict:
    return {
        "columns": dict(template.columns),
        "date_format": template.date_format,
        "value_maps": dict(template.value_maps),
    }


@transaction.atomic
def run_set_mapping(
    *,
    run: ImportRun,
    mapping: dict,
    mark_missing_inactive: bool,
    save_as: str = "",
    template: MappingTemplate | None = None,
    user: User | None = None,
) -> ImportRun:
    """Fix the mapping of a run and queue its dry run. With save_as, the mapping is also
    kept as a template of that name (a new one, or `template` updated)."""
    run = ImportRun.objects.select_for_update().get(pk=run.pk)
    if run.status not in (ImportStatus.MAPPING, ImportStatus.ANALYSED, ImportStatus.FAILED):
        raise ImportRefused(gettext_noop("This import is already running or done."))
    _refuse_managed(run.kind)
    if save_as:
        template = template_save(
            kind=run.kind, name=save_as, mapping=mapping, template=template, user=user
        )
    run.mapping = template
    run.mapping_used = mapping
    run.mark_missing_inactive = mark_missing_inactive and IMPORTERS[run.kind].supports_inactive
    run.status = ImportStatus.ANALYSING
    run.rows_done = 0
    run.error = ""
    run.save()
    return run


def template_save(
    *,
    kind: str,
    name: str,
    mapping: dict,
    template: MappingTemplate | None = None,
    user: User | None = None,
) -> MappingTemplate:
    if template is None or template.name != name:
        template = MappingTemplate.objects.filter(kind=kind, name=name).first() or MappingTemplate(
            kind=kind, name=name, created_by=user
        )
    created = template.pk is None
    template.columns = mapping.get("columns", {})
    template.date_format = mapping.get("date_format", template.date_format)
    template.value_maps = mapping.get("value_maps", {})
    template.full_clean()
    template.save()
    log_audit(
        action=AuditAction.CREATED if created else AuditAction.UPDATED,
        obj=template,
        actor=user,
    )
    return template


@transaction.atomic
def run_confirm(*, run: ImportRun) -> ImportRun:
    """The user confirmed the dry run: queue the import itself."""
    run = ImportRun.objects.select_for_update().get(pk=run.pk)
    if run.status != ImportStatus.ANALYSED:
        raise ImportRefused(gettext_noop("Only an import whose dry run is done can be confirmed."))
    _refuse_managed(run.kind)
    run.status = ImportStatus.IMPORTING
    run.rows_done = 0
    run.save(update_fields=["status", "rows_done"])
    return run


def _batches(rows: Iterator, size: int) -> Iterator[list]:
    while batch := list(itertools.islice(rows, size)):
        yield batch


def _pass(run: ImportRun, *, write: bool) -> Importer:
    """One pass over the file: every row parsed, checked and (write) upserted."""
    table = read_table(bytes(run.content))
    importer = IMPORTERS[run.kind](
        Mapping.build(table.headers, run.mapping_used),
        write=write,
        mark_missing_inactive=run.mark_missing_inactive,
    )
    done = 0
    last_report = time.monotonic()
    for batch in _batches(table.rows, BATCH_SIZE):
        if write:
            with transaction.atomic():
                importer.process_batch(batch)
        else:
            importer.process_batch(batch)
        done += len(batch)
        if time.monotonic() - last_report >= PROGRESS_SECONDS:
            last_report = time.monotonic()
            total = max(run.rows_total or 0, done)
            ImportRun.objects.filter(pk=run.pk).update(rows_done=done, rows_total=total)
    with transaction.atomic():
        importer.inactivate_missing()
    importer.rows_read = done  # type: ignore[attr-defined]
    return importer


def _store(run: ImportRun, importer: Importer, status: str) -> None:
    outcome = importer.outcome
    run.status = status
    run.rows_total = run.rows_done = importer.rows_read  # type: ignore[attr-defined]
    run.created = outcome.created
    run.updated = outcome.updated
    run.unchanged = outcome.unchanged
    run.rejected = outcome.rejected
    run.inactivated = outcome.inactivated
    # In file order: a batch finds bad cells before unknown references.
    run.rejections = sorted(outcome.rejections, key=lambda rejection: rejection["line"])
    run.save()


def run_fail(*, run: ImportRun, message: str) -> None:
    """A run that cannot go on (its task could not be queued); message is a msgid."""
    _fail(run, message)


def _fail(run: ImportRun, message: str) -> None:
    ImportRun.objects.filter(pk=run.pk).update(
        status=ImportStatus.FAILED, error=message, finished_at=timezone.now()
    )


def _passed(*, run_id: int, status: str, write: bool, crashed: str) -> tuple:
    """One pass over the run's file if the run is in `status`: (run, importer), or
    (None, None) when there is nothing to do or the pass failed (recorded on the run).
    An unexpected error is recorded as `crashed` and raised."""
    run = ImportRun.objects.filter(pk=run_id, status=status).first()
    if run is None:
        return None, None
    # The sync may have been switched on while the run waited in the queue.
    if managed_by_calserver(kind=run.kind):
        _fail(run, MANAGED_BY_CALSERVER)
        return None, None
    try:
        return run, _pass(run, write=write)
    except UnreadableFile as exc:
        _fail(run, str(exc))
        return None, None
    except Exception:
        # A real import keeps the batches committed so far: importing the file again
        # completes it.
        _fail(run, crashed)
        raise


def run_analyse(*, run_id: int) -> ImportRun | None:
    """The dry run: what the import would create, update, leave and reject. Writes
    nothing but the run."""
    run, importer = _passed(
        run_id=run_id,
        status=ImportStatus.ANALYSING,
        write=False,
        crashed=gettext_noop("The dry run stopped with an unexpected error."),
    )
    if run is None:
        return None
    _store(run, importer, ImportStatus.ANALYSED)
    return run


def run_apply(*, run_id: int) -> ImportRun | None:
    """The confirmed import: upserts every good row, marks missing records inactive when
    asked, records the outcome and writes it to the Log."""
    run, importer = _passed(
        run_id=run_id,
        status=ImportStatus.IMPORTING,
        write=True,
        crashed=gettext_noop("The import stopped with an unexpected error."),
    )
    if run is None:
        return None
    run.finished_at = timezone.now()
    _store(run, importer, ImportStatus.DONE)
    log_event(
        category=Category.CONFIGURATION,
        level=Level.WARNING if run.rejected else Level.INFO,
        message=gettext_noop(
            "Import of %(file)s (%(kind)s): %(created)s created, %(updated)s updated, "
            "%(unchanged)s unchanged, %(rejected)s rejected, %(inactivated)s marked inactive"
        ),
        params={
            "file": run.file_name,
            "kind": run.kind,
            "created": run.created,
            "updated": run.updated,
            "unchanged": run.unchanged,
            "rejected": run.rejected,
            "inactivated": run.inactivated,
        },
        actor=run.created_by,
        obj=run,
        details={
            "mapping": run.mapping.name if run.mapping else "",
            "columns": run.mapping_used.get("columns", {}),
        },
    )
    return run
