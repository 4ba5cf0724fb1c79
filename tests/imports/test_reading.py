"""Files as they come: CSV by hand in every encoding and separator, workbooks with
formulas and merged header cells."""

import datetime
import io

from openpyxl import Workbook

from imports.reading import read_table
from inventory.models import Customer, Instrument
from tests.factories import CustomerFactory
from tests.imports.conftest import xlsx_bytes

COLUMNS = {"Kundennummer": "number", "Name": "name", "Ort": "city"}


def rows_of(content):
    table = read_table(content)
    return table.headers, list(table.rows)


def test_csv_windows_1252_with_semicolons(run_import):
    content = "Kundennummer;Name;Ort\r\n1001;Müller & Söhne;Düsseldorf\r\n".encode("cp1252")

    run = run_import("customers", content, COLUMNS, file_name="kunden.csv")

    assert run.created == 1
    assert Customer.objects.get(number="1001").name == "Müller & Söhne"
    assert Customer.objects.get(number="1001").city == "Düsseldorf"


def test_csv_utf8_with_bom_and_commas():
    content = '\ufeffKundennummer,Name,Ort\n1001,"Groß, Klein GmbH",Köln\n'.encode()

    headers, rows = rows_of(content)

    assert headers == ["Kundennummer", "Name", "Ort"]
    assert rows == [(2, ["1001", "Groß, Klein GmbH", "Köln"])]


def test_csv_utf8_without_bom_keeps_line_numbers_past_empty_lines():
    content = "Kundennummer;Name\n1001;Ä\n\n1002;Ö\n".encode()

    _headers, rows = rows_of(content)

    assert rows == [(2, ["1001", "Ä"]), (4, ["1002", "Ö"])]


def test_german_dates_in_csv(run_import):
    CustomerFactory(number="1001", emails=[])
    content = b"Inventarnummer;Bezeichnung;Kunde;Letzte Kalibrierung\nINV-1;Waage;1001;31.12.2026\n"

    run_import(
        "instruments",
        content,
        {
            "Inventarnummer": "inventory_number",
            "Bezeichnung": "description",
            "Kunde": "customer_number",
            "Letzte Kalibrierung": "last_calibration",
        },
        file_name="inventar.csv",
    )

    assert Instrument.objects.get().last_calibration == datetime.date(2026, 12, 31)


def test_merged_title_above_the_header_is_skipped():
    content = xlsx_bytes(
        [["Kundennummer", "Name", "Ort"], ["1001", "A", "B"]], title_row="calServer Export 2026"
    )

    headers, rows = rows_of(content)

    assert headers == ["Kundennummer", "Name", "Ort"]
    assert rows == [(3, ["1001", "A", "B"])]


def test_merged_header_cells_get_column_letters():
    content = xlsx_bytes([["Kunde", None, "Ort"], ["1001", "A", "B"]], merge="A1:B1")

    headers, _rows = rows_of(content)

    assert headers == ["Kunde", "Column B", "Ort"]


def test_real_dates_and_numbers_in_a_workbook(run_import):
    CustomerFactory(number="1001", emails=[])
    content = xlsx_bytes(
        [
            ["Inventarnummer", "Bezeichnung", "Kunde", "Letzte Kalibrierung", "Intervall"],
            ["INV-1", "Waage", 1001, datetime.datetime(2026, 1, 31), 24.0],
        ]
    )

    run = run_import(
        "instruments",
        content,
        {
            "Inventarnummer": "inventory_number",
            "Bezeichnung": "description",
            "Kunde": "customer_number",
            "Letzte Kalibrierung": "last_calibration",
            "Intervall": "calibration_interval_months",
        },
    )

    instrument = Instrument.objects.get()
    assert run.created == 1
    assert (instrument.last_calibration, instrument.calibration_interval_months) == (
        datetime.date(2026, 1, 31),
        24,
    )
    assert instrument.next_due_date == datetime.date(2028, 1, 31)


def test_formula_cells_give_their_computed_value():
    # Excel stores a formula with its last value; openpyxl writes none. Read data-only.
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Kundennummer", "Name"])
    sheet.append(["1001", '=CONCATENATE("A","B")'])
    buffer = io.BytesIO()
    workbook.save(buffer)

    _headers, rows = rows_of(buffer.getvalue())

    # No cached value in an openpyxl file: the formula's text is not taken as data.
    assert rows == [(2, ["1001", ""])]


def test_unreadable_file_is_refused():
    import pytest

    from imports.reading import UnreadableFile

    with pytest.raises(UnreadableFile):
        read_table(b"PK\x03\x04 not a zip at all")
