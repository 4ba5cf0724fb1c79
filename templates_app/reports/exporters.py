"""Turn a built report into the file a mail carries: Excel, PDF (from HTML) or CSV.

Call the exporters inside translation.override(language): headers, dates in the PDF and
the PDF's texts follow the active language.
"""

import csv
import datetime
import functools
import gc
import io
import re
import struct
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass
from xml.sax.saxutils import escape as xml_escape

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.formats import date_format
from django.utils.text import slugify
from django.utils.translation import gettext as _
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel

from calmail.common.export import neutralise, neutralise_csv
from calmail.common.mailtypes import AttachmentSpec, ExportType
from inventory.models import DueFilter
from templates_app.reports.registry import ColumnKind, ReportData

EXTENSIONS = {ExportType.EXCEL: "xlsx", ExportType.PDF_HTML: "pdf", ExportType.CSV: "csv"}
CONTENT_TYPES = {
    ExportType.EXCEL: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ExportType.PDF_HTML: "application/pdf",
    ExportType.CSV: "text/csv; charset=utf-8",
}
# Excel shows dates in these formats; the cells stay real dates whatever the format.
EXCEL_DATE_FORMATS = {"de": "DD.MM.YYYY", "en": "YYYY-MM-DD"}
MAX_COLUMN_WIDTH = 60
WIDTH_SAMPLE_ROWS = 1000
# Characters Excel refuses in sheet names.
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_TRANSLITERATION = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"}
)


def report_filename(title: str, today: datetime.date, export_type: str) -> str:
    """ "instruments-due-for-calibration-2025-03-01.xlsx": the report's name and date, in
    characters every mail client and file system accepts."""
    stem = slugify(title.translate(_TRANSLITERATION)) or "report"
    return f"{stem[:80]}-{today.isoformat()}.{EXTENSIONS[export_type]}"


def export_type_of(filename: str) -> str:
    """The export type a report file of report_filename() was made in; "" for others."""
    extension = filename.rpartition(".")[2].lower()
    return next((kind for kind, known in EXTENSIONS.items() if known == extension), "")


def filter_description(report: ReportData) -> str:
    key = ("filter", translation.get_language())
    text = report.texts.get(key)
    if text is None:
        text = report.texts[key] = _filter_description(report)
    return str(text)


def _filter_description(report: ReportData) -> str:
    label = DueFilter(report.due_filter).label if report.due_filter in DueFilter.values else ""
    if report.due_filter in (DueFilter.DUE, DueFilter.DUE_OVERDUE):
        return _("%(filter)s, window %(days)s days (until %(date)s)") % {
            "filter": label,
            "days": report.window_days,
            "date": date_format(
                report.today + datetime.timedelta(days=report.window_days), "SHORT_DATE_FORMAT"
            ),
        }
    return str(label)


def export_report(
    report: ReportData, *, export_type: str, recipient_label: str = "", csv_separator: str = ";"
) -> AttachmentSpec:
    """The report as a file to attach (exported=True)."""
    if export_type == ExportType.EXCEL:
        content = export_excel(report)
    elif export_type == ExportType.PDF_HTML:
        content = export_pdf(report, recipient_label=recipient_label)
    elif export_type == ExportType.CSV:
        content = export_csv(report, separator=csv_separator)
    else:
        raise ValueError(f"Unknown export type {export_type!r}")
    return AttachmentSpec(
        filename=report_filename(report.title, report.today, export_type),
        content=content,
        content_type=CONTENT_TYPES[export_type],
        exported=True,
    )


# --- Excel ----------------------------------------------------------------------------------


def _column_widths(report: ReportData) -> list[int]:
    """Width per column in characters: the header, and the longest value of the first
    rows (a write-only sheet fixes widths before the first row)."""
    widths = []
    sample = report.rows[:WIDTH_SAMPLE_ROWS]
    for column, header in zip(report.columns, report.headers(), strict=True):
        if column.kind == ColumnKind.DATE:
            longest = 10
        else:
            longest = max((len(str(row.get(column.key) or "")) for row in sample), default=0)
        widths.append(min(MAX_COLUMN_WIDTH, max(len(header), longest, 6) + 2))
    return widths


def export_excel(report: ReportData) -> bytes:
    """The report as an .xlsx: bold frozen header, autofilter over the table, real date
    cells, widths from the content.

    A fan-out makes one small workbook per recipient, and openpyxl spends most of each on
    the parts that never change (styles, theme, relationships). So the unchanging parts
    are made once by openpyxl and kept, compressed; per report only the sheet, the
    workbook part and the properties are written and compressed here. Values outside the
    plain types (or with characters XML cannot hold) take openpyxl's general path, so the
    result never differs.
    """
    date_format_code = EXCEL_DATE_FORMATS.get(translation.get_language() or "", "YYYY-MM-DD")
    keys = [column.key for column in report.columns]
    date_keys = {column.key for column in report.columns if column.kind == ColumnKind.DATE}
    skeleton = _skeleton(date_format_code)
    header_row = _header_row(tuple(report.headers()), skeleton.bold)
    if header_row is None or not all(
        _plain(row.get(key), date=key in date_keys) for row in report.rows for key in keys
    ):
        return _export_excel_openpyxl(report)
    title = _SHEET_FORBIDDEN.sub(" ", report.title)[:31].strip() or "Report"
    last_column = get_column_letter(max(len(keys), 1))
    last_row = report.count + 1
    letters = [get_column_letter(index) for index in range(1, len(keys) + 1)]

    sheet = [_SHEET_START]
    sheet.append("<cols>")
    for index, width in enumerate(_column_widths(report), start=1):
        sheet.append(f'<col width="{width}" customWidth="1" min="{index}" max="{index}" />')
    sheet.append("</cols><sheetData>")
    sheet.append(header_row)
    for number, row in enumerate(report.rows, start=2):
        sheet.append(f'<row r="{number}">')
        for letter, key in zip(letters, keys, strict=True):
            value = row.get(key)
            reference = f"{letter}{number}"
            if value is None:
                continue
            if isinstance(value, datetime.date):
                serial = int(to_excel(value))
                sheet.append(f'<c r="{reference}" s="{skeleton.date}" t="n"><v>{serial}</v></c>')
            elif isinstance(value, str):
                sheet.append(_text_cell(reference, neutralise(value), None))
            else:
                sheet.append(f'<c r="{reference}" t="n"><v>{value}</v></c>')
        sheet.append("</row>")
    sheet.append(f'</sheetData><autoFilter ref="A1:{last_column}{last_row}" />{_SHEET_END}')

    quoted = "'" + title.replace("'", "''") + "'"
    workbook = _WORKBOOK.format(
        name=xml_escape(title, {'"': "&quot;"}),
        filter=xml_escape(f"{quoted}!$A$1:${last_column}${last_row}"),
    )
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _zip(
        [
            *skeleton.before,
            # These two repeat across a fan-out (same second, same title and row count).
            _repeated_part("docProps/core.xml", _CORE.format(stamp=stamp).encode()),
            _ZipPart.of("xl/worksheets/sheet1.xml", "".join(sheet).encode()),
            _repeated_part("xl/workbook.xml", workbook.encode()),
            *skeleton.after,
        ]
    )


# --- a zip archive of parts compressed beforehand ------------------------------------------
# zipfile compresses every part it writes; the skeleton's parts (the theme alone is 10 kB)
# are the same in every workbook, so they are compressed once. The archive is what
# zipfile.ZipFile(…, "w", ZIP_DEFLATED).writestr() makes: the same headers, the same
# deflate stream (zlib's default level, raw), the time of writing.

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_CENTRAL_HEADER = struct.Struct("<4s4B4HL2L5H2L")
_END_RECORD = struct.Struct("<4s4H2LH")
_ZIP_VERSION = 20  # deflate
_ZIP_SYSTEM = 3  # Unix, as zipfile writes it anywhere but Windows
_ZIP_FILE_ATTRIBUTES = 0o600 << 16  # zipfile's for a part written from bytes


@dataclass(frozen=True)
class _ZipPart:
    name: bytes
    crc: int
    size: int
    compressed: bytes

    @classmethod
    def of(cls, name: str, content: bytes) -> "_ZipPart":
        compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        compressed = compressor.compress(content) + compressor.flush()
        return cls(name.encode("ascii"), zlib.crc32(content), len(content), compressed)


@functools.lru_cache(maxsize=64)
def _repeated_part(name: str, content: bytes) -> _ZipPart:
    """A small part many workbooks in a row have (kept compressed, by its content)."""
    return _ZipPart.of(name, content)


def _zip(parts: list[_ZipPart]) -> bytes:
    year, month, day, hour, minute, second = time.localtime()[:6]
    dos_time = hour << 11 | minute << 5 | second // 2
    dos_date = max(year - 1980, 0) << 9 | month << 5 | day
    chunks: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for part in parts:
        fields = (zipfile.ZIP_DEFLATED, dos_time, dos_date, part.crc)
        sizes = (len(part.compressed), part.size, len(part.name))
        header = _LOCAL_HEADER.pack(b"PK\x03\x04", _ZIP_VERSION, 0, 0, *fields, *sizes, 0)
        chunks += (header, part.name, part.compressed)
        central += (
            _CENTRAL_HEADER.pack(
                b"PK\x01\x02",
                _ZIP_VERSION,
                _ZIP_SYSTEM,
                _ZIP_VERSION,
                0,
                0,
                *fields,
                *sizes,
                0,
                0,
                0,
                0,
                _ZIP_FILE_ATTRIBUTES,
                offset,
            ),
            part.name,
        )
        offset += len(header) + len(part.name) + len(part.compressed)
    directory = b"".join(central)
    end = _END_RECORD.pack(b"PK\x05\x06", 0, 0, len(parts), len(parts), len(directory), offset, 0)
    return b"".join(chunks) + directory + end


@functools.lru_cache(maxsize=32)
def _header_row(headers: tuple[str, ...], bold: int) -> str | None:
    """The bold header row (the same for every report of a fan-out), or None when a
    header is not plain (the general path writes the report)."""
    if not all(_plain(value, date=False) for value in headers):
        return None
    cells = [
        _text_cell(f"{get_column_letter(index)}1", neutralise(label), bold)
        for index, label in enumerate(headers, start=1)
    ]
    return '<row r="1">' + "".join(cells) + "</row>"


_PLAIN_TYPES = (str, int, datetime.date, type(None))
MAX_CELL_TEXT = 32767


def _plain(value, *, date: bool) -> bool:
    """A value the fast path writes exactly as openpyxl would: a date only in a date
    column (elsewhere openpyxl gives it a style of its own)."""
    if isinstance(value, bool) or not isinstance(value, _PLAIN_TYPES):
        return False
    if isinstance(value, datetime.date) and (isinstance(value, datetime.datetime) or not date):
        return False
    # openpyxl cuts longer texts and refuses control characters; it does so itself.
    return not (
        isinstance(value, str)
        and (len(value) > MAX_CELL_TEXT or ILLEGAL_CHARACTERS_RE.search(value))
    )


def _text_cell(reference: str, value: str, style: int | None) -> str:
    styled = f' s="{style}"' if style is not None else ""
    if not value:
        return f'<c r="{reference}"{styled} t="inlineStr" />'
    space = ' xml:space="preserve"' if value != value.strip() else ""
    return (
        f'<c r="{reference}"{styled} t="inlineStr"><is><t{space}>{xml_escape(value)}</t></is></c>'
    )


@dataclass(frozen=True)
class _Skeleton:
    before: list["_ZipPart"]
    after: list["_ZipPart"]
    bold: int
    date: int


_SKELETONS: dict[str, _Skeleton] = {}
_SKELETON_LOCK = threading.Lock()
# The parts made per report; everything else in the archive is the skeleton.
_PER_REPORT = {"docProps/core.xml", "xl/worksheets/sheet1.xml", "xl/workbook.xml"}
_SHEET_START = (
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<sheetPr><outlinePr summaryBelow="1" summaryRight="1" /><pageSetUpPr /></sheetPr>'
    '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" '
    'activePane="bottomLeft" state="frozen" /><selection pane="bottomLeft" activeCell="A1" '
    'sqref="A1" /></sheetView></sheetViews>'
    '<sheetFormatPr baseColWidth="8" defaultRowHeight="15" />'
)
_SHEET_END = (
    '<pageMargins left="0.75" right="0.75" top="1" bottom="1" header="0.5" footer="0.5" />'
    "</worksheet>"
)
_WORKBOOK = (
    '<workbook xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
    'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><workbookPr />'
    '<workbookProtection /><bookViews><workbookView visibility="visible" minimized="0" '
    'showHorizontalScroll="1" showVerticalScroll="1" showSheetTabs="1" tabRatio="600" '
    'firstSheet="0" activeTab="0" autoFilterDateGrouping="1" /></bookViews><sheets>'
    '<sheet name="{name}" sheetId="1" state="visible" r:id="rId1" /></sheets><definedNames>'
    '<definedName name="_xlnm._FilterDatabase" localSheetId="0" hidden="1">{filter}'
    '</definedName></definedNames><calcPr calcId="124519" fullCalcOnLoad="1" /></workbook>'
)
_CORE = (
    '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
    'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:dcterms="http://purl.org/dc/terms/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><dc:creator>openpyxl</dc:creator>'
    '<dcterms:created xsi:type="dcterms:W3CDTF">{stamp}</dcterms:created>'
    '<dcterms:modified xsi:type="dcterms:W3CDTF">{stamp}</dcterms:modified>'
    "</cp:coreProperties>"
)
_STYLE_OF = re.compile(r'<c r="([A-Z]+[0-9]+)" s="([0-9]+)"')


def _skeleton(date_format_code: str) -> _Skeleton:
    """The unchanging parts for one date format, made once by openpyxl from a sample with
    a bold header cell and a date cell in that format."""
    skeleton = _SKELETONS.get(date_format_code)
    if skeleton is not None:
        return skeleton
    with _SKELETON_LOCK:
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet(title="Report")
        header = WriteOnlyCell(sheet, value="h")
        header.font = Font(bold=True)
        sheet.append([header])
        dated = WriteOnlyCell(sheet, value=datetime.date(2000, 1, 1))
        dated.number_format = date_format_code
        sheet.append([dated])
        buffer = io.BytesIO()
        workbook.save(buffer)
        with zipfile.ZipFile(buffer) as archive:
            names = archive.namelist()
            parts = [_ZipPart.of(name, archive.read(name)) for name in names]
            styles = dict(_STYLE_OF.findall(archive.read("xl/worksheets/sheet1.xml").decode()))
        # The archive keeps openpyxl's order of parts: those before the sheet, then after.
        first = names.index("docProps/core.xml")
        kept = [part for part in parts if part.name.decode() not in _PER_REPORT]
        skeleton = _Skeleton(
            before=[part for part in kept if names.index(part.name.decode()) < first],
            after=[part for part in kept if names.index(part.name.decode()) > first],
            bold=int(styles["A1"]),
            date=int(styles["A2"]),
        )
        _SKELETONS[date_format_code] = skeleton
    return skeleton


def _export_excel_openpyxl(report: ReportData) -> bytes:
    """Write-only workbook (rows streamed, not kept as cell objects): bold frozen header,
    autofilter over the table, real date cells, widths from the content. The general
    path, for values the fast path does not write itself."""
    workbook = Workbook(write_only=True)
    title = _SHEET_FORBIDDEN.sub(" ", report.title)[:31].strip() or "Report"
    sheet = workbook.create_sheet(title=title)
    for index, width in enumerate(_column_widths(report), start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"
    last_column = get_column_letter(max(len(report.columns), 1))
    sheet.auto_filter.ref = f"A1:{last_column}{report.count + 1}"

    bold = Font(bold=True)
    header = []
    for label in report.headers():
        cell = WriteOnlyCell(sheet, value=neutralise(label))
        cell.font = bold
        header.append(cell)
    sheet.append(header)

    date_format_code = EXCEL_DATE_FORMATS.get(translation.get_language() or "", "YYYY-MM-DD")
    keys = [column.key for column in report.columns]
    date_keys = {column.key for column in report.columns if column.kind == ColumnKind.DATE}
    for row in report.rows:
        cells = []
        for key in keys:
            value = row.get(key)
            if key in date_keys and value is not None:
                cell = WriteOnlyCell(sheet, value=value)
                cell.number_format = date_format_code
                cells.append(cell)
            else:
                cells.append(neutralise(value))
        sheet.append(cells)

    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# --- CSV ------------------------------------------------------------------------------------


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bool | int | float):
        return str(value)
    return neutralise_csv(str(value))


def export_csv(report: ReportData, *, separator: str = ";") -> bytes:
    """UTF-8 with a BOM (Excel then reads umlauts right); ";" is what Excel expects with
    German regional settings, "," elsewhere. Dates in ISO 8601. Every field quoted and
    every piece a spreadsheet could split it into made inert, as in the list exports
    (calmail.common.export.neutralise_csv): report cells hold customers' own texts."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=separator, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow([neutralise_csv(header) for header in report.headers()])
    keys = [column.key for column in report.columns]
    for row in report.rows:
        writer.writerow([_csv_value(row.get(key)) for key in keys])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


# --- PDF ------------------------------------------------------------------------------------


def _pdf_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime.date):
        return date_format(value, "SHORT_DATE_FORMAT")
    return str(value)


# A4 landscape minus the page margins, in points; DejaVu Sans Mono advances 0.602 em.
LISTING_LINE_WIDTH_PT = 775
MONOSPACE_ADVANCE_EM = 0.602
LISTING_ROWS_PER_PAGE = 52
LISTING_ROWS_FIRST_PAGE = 46


def _widths(report: ReportData) -> list[int]:
    """Column widths in characters: the provider's hint, at least the header's length
    (headers are never cut or broken inside a word)."""
    return [
        max(column.width, len(header), 6)
        for column, header in zip(report.columns, report.headers(), strict=True)
    ]


def _fit(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[: width - 1] + "…"


def _listing(report: ReportData, keys: list[str]) -> dict:
    """Large reports as one text line per row in a monospaced font, a page at a time.

    WeasyPrint spends about half a millisecond per table cell, so a 10,000-row table takes
    the better part of a minute and gigabytes of memory; a line per row is ten boxes fewer
    and renders in seconds. Columns keep their widths (values cut with "…"), the header
    line repeats on every page.
    """
    widths = _widths(report)
    separator = "  "

    def line(values) -> str:
        return separator.join(
            _fit(value, width) for value, width in zip(values, widths, strict=True)
        ).rstrip()

    characters = sum(widths) + len(separator) * (len(widths) - 1)
    font_size = min(7.0, LISTING_LINE_WIDTH_PT / (characters * MONOSPACE_ADVANCE_EM))
    lines = [line([_pdf_cell(row.get(key)) for key in keys]) for row in report.rows]
    pages, start, size = [], 0, LISTING_ROWS_FIRST_PAGE
    while start < len(lines):
        pages.append("\n".join(lines[start : start + size]))
        start += size
        size = LISTING_ROWS_PER_PAGE
    return {"header": line(report.headers()), "pages": pages, "font_size": f"{font_size:.2f}"}


def report_html(report: ReportData, *, recipient_label: str = "") -> str:
    """The HTML the PDF is rendered from (the project's template engine, autoescaped).

    Up to CALMAIL_PDF_TABLE_MAX_ROWS rows: a table whose header repeats on every page.
    Beyond that, a compact listing (see _listing) that renders in seconds.
    """
    widths = _widths(report)
    total = sum(widths)
    keys = [column.key for column in report.columns]
    context = {
        "language": translation.get_language(),
        "title": report.title,
        "today": report.today,
        "recipient": recipient_label,
        "filter": filter_description(report),
        "count": report.count,
    }
    if report.count > settings.CALMAIL_PDF_TABLE_MAX_ROWS:
        context["listing"] = _listing(report, keys)
    else:
        context["columns"] = [
            {"label": header, "width": f"{100 * width / total:.2f}"}
            for width, header in zip(widths, report.headers(), strict=True)
        ]
        context["rows"] = [[_pdf_cell(row.get(key)) for key in keys] for row in report.rows]
    return render_to_string("templates_app/report_pdf.html", context)


def export_pdf(report: ReportData, *, recipient_label: str = "") -> bytes:
    """A4 landscape; the table header repeats on every page; page numbers in the footer."""
    # Imported on first use: WeasyPrint loads Pango and fonts, which web requests that
    # never make a PDF need not pay for.
    from weasyprint import HTML

    html = report_html(report, recipient_label=recipient_label)
    # WeasyPrint builds millions of small objects for a large table; the cyclic garbage
    # collector would walk them again and again (a 10,000-row report took twice as long).
    # They are freed by reference counting when the render is done.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return HTML(string=html, url_fetcher=_no_fetching()).write_pdf()
    finally:
        if collecting:
            gc.enable()


def _no_fetching():
    """The report loads nothing from anywhere: its HTML has no URLs, and if data ever
    smuggled one in, it must not make the server fetch it."""
    from weasyprint.urls import URLFetcher

    class NoFetching(URLFetcher):
        def fetch(self, url, headers=None):
            raise ValueError("Reports load no external resources.")

    return NoFetching()
