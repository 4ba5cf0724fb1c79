import csv
import dataclasses
import datetime
import io
import zipfile

import openpyxl
import pytest
from django.utils import translation
from pypdf import PdfReader

from inventory.selectors import Scope
from templates_app.reports import exporters, get
from templates_app.reports.exporters import export_report, report_filename
from tests.factories import CustomerFactory, InstrumentFactory, LocationFactory
from tests.templates_app.conftest import TODAY

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def customer_report(db):
    """The due/overdue INVENTORY report of one customer: two of its three instruments."""
    customer = CustomerFactory(number="1001", name="Muster GmbH")
    other = CustomerFactory(number="1002")
    lab = LocationFactory(name="Prüflabor", customer=customer)
    InstrumentFactory(
        inventory_number="INV-2",
        description="Drehmomentschlüssel",
        manufacturer="Hazet",
        model="6122-1CT",
        serial_number="=HYPERLINK(1)",
        customer=customer,
        location=lab,
        last_calibration=datetime.date(2024, 3, 20),
    )
    InstrumentFactory(
        inventory_number="INV-1",
        description="Messschieber",
        manufacturer="Mitutoyo",
        model="500-196",
        serial_number="SN-1",
        customer=customer,
        location=lab,
        last_calibration=datetime.date(2024, 2, 1),
    )
    InstrumentFactory(inventory_number="INV-3", customer=customer, last_calibration=TODAY)
    InstrumentFactory(
        inventory_number="INV-9", customer=other, last_calibration=datetime.date(2024, 2, 1)
    )
    with translation.override("en"):
        yield get("instruments_due").build(
            scope=Scope.customer(customer.pk), due_filter="due_overdue", window_days=30, today=TODAY
        )


EXPECTED_ROWS = [
    # inventory number, description, serial number, next due date, state
    ("INV-1", "Messschieber", "SN-1", datetime.date(2025, 2, 1), "overdue"),
    ("INV-2", "Drehmomentschlüssel", "'=HYPERLINK(1)", datetime.date(2025, 3, 20), "due"),
]


def test_report_filename_carries_report_name_and_date():
    assert (
        report_filename("Fällige Prüfmittel / März", datetime.date(2025, 3, 3), "excel")
        == "faellige-pruefmittel-maerz-2025-03-03.xlsx"
    )
    assert report_filename("", datetime.date(2025, 3, 3), "pdf_html") == "report-2025-03-03.pdf"


def test_excel_export_reads_back(customer_report):
    with translation.override("en"):
        spec = export_report(customer_report, export_type="excel")

    workbook = openpyxl.load_workbook(io.BytesIO(spec.content))
    sheet = workbook.active
    rows = list(sheet.iter_rows(values_only=True))
    header = rows[0]
    index = {name: header.index(name) for name in header}

    assert spec.content_type == XLSX and spec.exported is True
    assert spec.filename == "instruments-due-for-calibration-2025-03-03.xlsx"
    assert header == (
        "Inventory number",
        "Description",
        "Manufacturer",
        "Model",
        "Serial number",
        "Customer",
        "Location",
        "Last calibration",
        "Next calibration",
        "Status",
    )
    assert [
        (
            row[index["Inventory number"]],
            row[index["Description"]],
            row[index["Serial number"]],
            row[index["Next calibration"]],
            row[index["Status"]],
        )
        for row in rows[1:]
    ] == [
        (n, d, s, datetime.datetime.combine(due, datetime.time()), st)
        for n, d, s, due, st in EXPECTED_ROWS
    ]
    due_cell = sheet.cell(row=2, column=index["Next calibration"] + 1)
    assert due_cell.is_date and due_cell.number_format == "YYYY-MM-DD"
    assert all(cell.font.bold for cell in sheet[1])
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:J3"
    assert sheet.column_dimensions["B"].width >= len("Drehmomentschlüssel")


def test_excel_export_german_date_format(customer_report):
    with translation.override("de"):
        spec = export_report(customer_report, export_type="excel")

    sheet = openpyxl.load_workbook(io.BytesIO(spec.content)).active

    assert sheet.cell(row=2, column=9).number_format == "DD.MM.YYYY"
    assert sheet.cell(row=2, column=9).value == datetime.datetime(2025, 2, 1)


def test_csv_export_reads_back_with_semicolons(customer_report):
    with translation.override("en"):
        spec = export_report(customer_report, export_type="csv", csv_separator=";")

    assert spec.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(spec.content.decode("utf-8-sig")), delimiter=";"))

    assert spec.filename.endswith(".csv") and spec.content_type.startswith("text/csv")
    assert rows[0][0] == "Inventory number"
    assert [(row[0], row[1], row[4], row[8], row[9]) for row in rows[1:]] == [
        (n, d, s, due.isoformat(), st) for n, d, s, due, st in EXPECTED_ROWS
    ]


def test_csv_export_with_commas(customer_report):
    spec = export_report(customer_report, export_type="csv", csv_separator=",")

    rows = list(csv.reader(io.StringIO(spec.content.decode("utf-8-sig"))))

    assert len(rows) == 3 and rows[1][0] == "INV-1"


def _pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_pdf_export_contains_the_rows(customer_report):
    with translation.override("en"):
        spec = export_report(
            customer_report, export_type="pdf_html", recipient_label="1001 · Muster GmbH"
        )

    text = _pdf_text(spec.content)

    assert spec.content.startswith(b"%PDF") and spec.filename.endswith(".pdf")
    assert "Instruments due for calibration" in text
    assert "1001 · Muster GmbH" in text
    assert "2 rows" in text
    assert "Page 1 / 1" in text
    for number, description, _serial, due, state in EXPECTED_ROWS:
        assert number in text and description in text and state in text
        assert due.strftime("%m/%d/%Y") in text
    assert "INV-3" not in text and "INV-9" not in text


def test_pdf_header_repeats_on_every_page(db, settings):
    customer = CustomerFactory()
    InstrumentFactory.create_batch(
        120, customer=customer, last_calibration=datetime.date(2024, 3, 1)
    )
    with translation.override("en"):
        report = get("instruments_due").build(
            scope=Scope.customer(customer.pk), due_filter="all", window_days=30, today=TODAY
        )
        spec = export_report(report, export_type="pdf_html")

    # Words of a header may wrap inside their cell: compare with single spaces.
    pages = [
        " ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(spec.content)).pages
    ]

    assert len(pages) > 1
    assert all("Inventory number" in page for page in pages)
    assert pages[-1].rstrip().endswith(f"Page {len(pages)} / {len(pages)}")


def test_pdf_large_report_is_a_listing_with_every_row(db, settings):
    settings.CALMAIL_PDF_TABLE_MAX_ROWS = 50
    customer = CustomerFactory()
    instruments = InstrumentFactory.create_batch(
        110, customer=customer, last_calibration=datetime.date(2024, 3, 1)
    )
    with translation.override("en"):
        report = get("instruments_due").build(
            scope=Scope.customer(customer.pk), due_filter="all", window_days=30, today=TODAY
        )
        spec = export_report(report, export_type="pdf_html")

    pages = [page.extract_text() for page in PdfReader(io.BytesIO(spec.content)).pages]
    text = "\n".join(pages)

    assert len(pages) == 3
    assert all("Inventory number" in page for page in pages)
    assert all(instrument.inventory_number in text for instrument in instruments)


def test_empty_report_is_known_before_export(db):
    report = get("instruments_due").build(
        scope=Scope.customer(CustomerFactory().pk), due_filter="all", window_days=30, today=TODAY
    )

    assert report.is_empty and report.count == 0


def read_everything(content: bytes) -> dict:
    """All a reader sees of a one-sheet export: title, cells with styles, widths, panes,
    filter."""
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    sheet = workbook.active
    return {
        "sheets": workbook.sheetnames,
        "cells": [
            [(c.value, c.number_format, c.font.b, c.data_type) for c in row]
            for row in sheet.iter_rows()
        ],
        "widths": {k: d.width for k, d in sheet.column_dimensions.items()},
        "freeze": sheet.freeze_panes,
        "filter": sheet.auto_filter.ref,
        "names": {k: v.attr_text for k, v in workbook.defined_names.items()}
        | {k: v.attr_text for k, v in sheet.defined_names.items()},
    }


def parts(content: bytes) -> set:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {(name, archive.read(name)) for name in archive.namelist()} | set(archive.namelist())


@pytest.mark.parametrize("language", ["de", "en"])
def test_excel_fast_path_reads_back_as_openpyxl_writes_it(customer_report, language):
    awkward = dataclasses.replace(
        customer_report,
        title='Kunde\'s <Prüf> & "Mittel" [1]',
        rows=[
            *customer_report.rows,
            {
                "inventory_number": "  leading and trailing  ",
                "description": "",
                "manufacturer": "a & b < c > d \" e ' f",
                "model": 42,
                "serial_number": "+SUM(1)",
                "last_calibration": None,
                "next_due_date": datetime.date(1900, 2, 1),
            },
        ],
    )
    with translation.override(language):
        for report in (customer_report, awkward, dataclasses.replace(awkward, rows=[])):
            fast = exporters.export_excel(report)
            general = exporters._export_excel_openpyxl(report)

            assert read_everything(fast) == read_everything(general)
            if report.rows:
                # Byte for byte the same parts, but for the creation time.
                assert parts(fast) - {"docProps/core.xml"} == parts(general) - {"docProps/core.xml"}


def test_excel_values_outside_the_plain_types_take_the_general_path(customer_report):
    odd = dataclasses.replace(
        customer_report,
        rows=[
            {
                "inventory_number": 1.5,
                "description": "x" * 40000,
                "model": datetime.date(2025, 1, 2),
            }
        ],
    )

    assert read_everything(exporters.export_excel(odd))["cells"][1][:2] == [
        (1.5, "General", False, "n"),
        ("x" * 32767, "General", False, "s"),
    ]
    assert read_everything(exporters.export_excel(odd))["cells"][1][3][:2] == (
        datetime.datetime(2025, 1, 2),
        "yyyy-mm-dd",
    )


def test_csv_report_quotes_every_field_and_neutralises_split_pieces(customer_report):
    """A customer's own text (here a model name) must not become a formula in an Excel
    that splits the field at another separator."""
    row = next(row for row in customer_report.rows if row["inventory_number"] == "INV-1")
    row["model"] = "x;=2+2;"

    spec = export_report(customer_report, export_type="csv", csv_separator=",")

    text = spec.content.decode("utf-8-sig")
    line = next(line for line in text.splitlines() if '"INV-1"' in line)
    assert '"x;\'=2+2;"' in line
    assert all(field.startswith('"') for field in line.split('","')[:1])
    for separator in (";", ","):
        pieces = [piece.strip('"') for piece in line.split(separator)]
        assert not [piece for piece in pieces if piece.startswith(("=", "+", "@"))]
