"""CSV and XLSX export of a table's filtered rows.

Rows are streamed from the database in chunks, so an export of a large list neither
loads it whole nor times out before the first byte.
"""

import csv
import datetime
import re
import tempfile
from collections.abc import Iterator

from django.http import FileResponse, StreamingHttpResponse
from django.utils import timezone, translation
from django.utils.encoding import force_str
from django_tables2.rows import BoundRow

EXPORT_FORMATS = ("csv", "xlsx")
# A spreadsheet treats a cell starting with one of these as a formula (CSV/formula injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


# Where a spreadsheet may start a new cell when it reads a CSV file with another
# separator than the one it was written with (a German Excel splits at ";", others at
# "," or TAB), or a new row once it has lost track of the quoting.
CSV_SEPARATORS = ",;\t\r\n"
# The start of every piece a spreadsheet might make a cell of (the field's start, or right
# after any separator), past spaces and quotes it may trim, when a formula trigger follows.
_SEPARATOR_CLASS = re.escape(CSV_SEPARATORS)
_TRIGGER_CLASS = re.escape("".join(FORMULA_PREFIXES))
_CSV_FORMULA_START = re.compile(
    f'(?:^|(?<=[{_SEPARATOR_CLASS}]))([ "\u00a0]*)(?=[{_TRIGGER_CLASS}])'
)


def neutralise(value):
    """Make a cell value inert for spreadsheets: prefix formula triggers with an apostrophe.

    For one cell that is not split any further (XLSX); CSV needs neutralise_csv().
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise_csv(text: str) -> str:
    """A CSV field's text made inert in whatever spreadsheet opens the file.

    OWASP's rule (an apostrophe before a leading = + - @ TAB or CR) applied to every piece
    a spreadsheet could split the field into at , ; TAB or a line break: "x;=2+2;" becomes
    "x;'=2+2;". Quoting every field (csv_response) is not enough on its own: an Excel that
    splits at ";" a file written with "," misreads the quotes and makes "=2+2" a cell.
    Text such as "-1" is prefixed too, as OWASP recommends ("-1+cmd|…" is a formula); real
    numbers are not text and stay as they are (see _csv_cell). Addresses and plain words
    are left alone: "@" inside "a@b.de" starts no piece.
    """
    return _CSV_FORMULA_START.sub(r"\1'", text)


def export_rows(table, *, chunk_size: int = 2000) -> Iterator[list]:
    """The header row, then one list of cell values per record, in the table's order."""
    columns = [
        column for column in table.columns.iterall() if not column.column.exclude_from_export
    ]
    yield [force_str(column.header) for column in columns]
    data = table.data.data
    records = data.iterator(chunk_size=chunk_size) if hasattr(data, "iterator") else iter(data)
    for record in records:
        row = BoundRow(record, table=table)
        yield [_plain(row.get_cell_value(column.name)) for column in columns]


def _plain(value):
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return timezone.localtime(value).replace(tzinfo=None) if timezone.is_aware(value) else value
    if isinstance(value, bool | int | float | datetime.date):
        return value
    return force_str(value)


class _Echo:
    def write(self, value):
        return value


def csv_separator(language: str | None = None) -> str:
    """The separator a spreadsheet of the reader's language splits at: a German Excel
    expects ";" (its decimal separator is the comma) and puts a ","-file in one column."""
    language = language or translation.get_language() or ""
    return ";" if language.split("-")[0] in SEMICOLON_LANGUAGES else ","


# Languages whose spreadsheets use the comma as decimal separator, and so ";" in CSV.
SEMICOLON_LANGUAGES = {"de"}


def csv_response(rows: Iterator[list], *, filename: str) -> StreamingHttpResponse:
    # Every field quoted: a quoted field is text to a spreadsheet, whatever its separator.
    # The separator is chosen now: the rows are written later, outside the request's
    # language.
    writer = csv.writer(_Echo(), quoting=csv.QUOTE_ALL, delimiter=csv_separator())

    def lines():
        # A BOM makes Excel read the file as UTF-8 (umlauts!).
        yield "\ufeff"
        for row in rows:
            yield writer.writerow([_csv_cell(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


def _csv_cell(value) -> str:
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bool | int | float):
        # A number the table computed, not text someone typed: "-5" stays readable.
        return str(value)
    return neutralise_csv(value if isinstance(value, str) else str(value))


def xlsx_response(rows: Iterator[list], *, filename: str, sheet_title: str) -> FileResponse:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=sheet_title[:31] or "Export")
    bold = Font(bold=True)
    rows = iter(rows)
    header = next(rows)
    header_cells = []
    for value in header:
        cell = WriteOnlyCell(sheet, value=neutralise(value))
        cell.font = bold
        header_cells.append(cell)
    sheet.freeze_panes = "A2"
    sheet.append(header_cells)
    for row in rows:
        sheet.append([neutralise(value) for value in row])
    # Spill to disk beyond a few MB instead of holding a large workbook in memory.
    # FileResponse closes it when the response is done.
    buffer = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    workbook.save(buffer)
    buffer.seek(0)
    return FileResponse(
        buffer,
        as_attachment=True,
        filename=f"{filename}.xlsx",
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
