"""Reading an uploaded table: XLSX through openpyxl in read-only (streaming) mode, CSV
through the csv module with the encoding and separator detected. Both give the header
row and then (line number, cells as text) per data row, one row at a time."""

import codecs
import csv
import datetime
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from django.utils.translation import gettext as _
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

# The header is looked for among the first rows (see _split_header).
HEADER_SEARCH_ROWS = 20


class UnreadableFile(ValueError):
    """The upload is neither an XLSX workbook nor a text table we can read."""


@dataclass
class Table:
    headers: list[str]
    header_line: int
    # An estimate for progress (XLSX: the sheet's dimension); None when unknown.
    rows_estimate: int | None
    rows: Iterator[tuple[int, list[str]]]


def is_xlsx(content: bytes) -> bool:
    return content[:4] == b"PK\x03\x04"


def cell_text(value) -> str:
    """A cell as the text the user sees: dates as ISO, whole numbers without ".0"."""
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        if value.time() == datetime.time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value).strip()


def decode_text(content: bytes) -> str:
    """UTF-8 with or without BOM, else Windows-1252 (what Excel writes as "CSV")."""
    if content.startswith(codecs.BOM_UTF8):
        return content[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")


def _name_headers(raw: list[str]) -> list[str]:
    """Empty header cells (merged cells continue empty) get the column letter; repeated
    names a number, so every column can be mapped on its own."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for index, text in enumerate(raw, start=1):
        name = text or _("Column %(letter)s") % {"letter": get_column_letter(index)}
        count = seen.get(name, 0) + 1
        seen[name] = count
        names.append(name if count == 1 else f"{name} ({count})")
    return names


def _split_header(
    rows: Iterator[list[str]],
) -> tuple[list[str], int, list[tuple[int, list[str]]]]:
    """Finds the header among the first rows; returns it, its line and the data rows read
    past it (to be yielded before the rest)."""
    head: list[tuple[int, list[str]]] = []
    for line, cells in enumerate(rows, start=1):
        head.append((line, cells))
        if len(head) >= HEADER_SEARCH_ROWS:
            break
    filled = [(sum(1 for cell in cells if cell), line, cells) for line, cells in head]
    if not filled or max(count for count, _line, _cells in filled) == 0:
        raise UnreadableFile(_("The file has no header row."))
    # The first row filled at least half as far as the fullest: a title or group row
    # above it is not, a header with merged (empty) cells still is.
    best = max(count for count, _line, _cells in filled)
    _count, header_line, header = next(item for item in filled if 2 * item[0] >= best)
    after = [(line, cells) for line, cells in head if line > header_line]
    return _name_headers(header), header_line, after


def _without_empty(rows: Iterator[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str]]]:
    for line, cells in rows:
        if any(cells):
            yield line, cells


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    yield from rest


def read_xlsx(content: bytes) -> Table:
    try:
        # read_only streams the sheet; data_only gives a formula's last computed value.
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise UnreadableFile(_("The file is not a readable XLSX workbook.")) from exc
    sheet = workbook.worksheets[0]
    raw = ([cell_text(value) for value in row] for row in sheet.iter_rows(values_only=True))
    headers, header_line, after = _split_header(raw)
    numbered = zip(range(header_line + len(after) + 1, 2**31), raw, strict=False)
    max_row = sheet.max_row
    estimate = max_row - header_line if max_row else None
    return Table(headers, header_line, estimate, _without_empty(_chain(after, numbered)))


def read_csv(content: bytes) -> Table:
    text = decode_text(content)
    first_line = text.split("\n", 1)[0]
    # The separator the header uses most; calServer and German Excel write ";".
    delimiter = max(";,\t", key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)

    def lines() -> Iterator[list[str]]:
        for cells in reader:
            yield [cell.strip() for cell in cells]

    raw = lines()
    headers, header_line, after = _split_header(raw)

    # reader.line_num counts physical lines, so a quoted line break keeps numbers true.
    def numbered() -> Iterator[tuple[int, list[str]]]:
        for cells in raw:
            yield reader.line_num, cells

    first = [(line, cells) for line, cells in after]
    estimate = max(text.count("\n") - header_line, 0)
    return Table(headers, header_line, estimate, _without_empty(_chain(first, numbered())))


def read_table(content: bytes) -> Table:
    if is_xlsx(content):
        return read_xlsx(content)
    if b"\x00" in content[:1024]:
        raise UnreadableFile(_("The file is neither XLSX nor CSV."))
    return read_csv(content)
