import io

import pytest
from openpyxl import Workbook

from imports import services
from imports.models import ImportRun


def xlsx_bytes(rows, *, merge=None, title_row=None) -> bytes:
    """A workbook as openpyxl writes it; title_row puts a merged title above the header."""
    workbook = Workbook()
    sheet = workbook.active
    if title_row is not None:
        sheet.append([title_row])
        sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(rows[0]))
    for row in rows:
        sheet.append(row)
    if merge:
        sheet.merge_cells(merge)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def run_import(admin):
    """Upload, map, dry run and (confirm=True) import a file through the services, the
    way the views and tasks do; returns the run after its last pass."""

    def run(
        kind,
        content,
        columns,
        *,
        confirm=True,
        date_format="%d.%m.%Y",
        value_maps=None,
        mark_missing_inactive=False,
        file_name="export.xlsx",
    ):
        created = services.run_create(
            kind=kind, file_name=file_name, content=content, user=admin, mapping=None
        )
        services.run_set_mapping(
            run=created,
            mapping={
                "columns": columns,
                "date_format": date_format,
                "value_maps": value_maps or {},
            },
            mark_missing_inactive=mark_missing_inactive,
        )
        services.run_analyse(run_id=created.pk)
        if confirm:
            services.run_confirm(run=created)
            services.run_apply(run_id=created.pk)
        return ImportRun.objects.get(pk=created.pk)

    return run
