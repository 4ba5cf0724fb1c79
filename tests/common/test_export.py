"""List exports (calmail.common.export) against spreadsheet formula injection, through a
real list page's CSV and XLSX export."""

import csv
import io
import re

import openpyxl
import pytest
from django.urls import reverse

from calmail.common.export import neutralise_csv
from tests.factories import SystemAddressFactory

pytestmark = pytest.mark.django_db

# Payloads from the security scan (issue 12, item 7), in the order the list sorts them.
PAYLOADS = ["=2+2", "x;=2+2;", "a,@SUM(1)", "\t=1", "+1", "-1"]
FORMULA_START = re.compile(r"""^[ "\u00a0]*[=+\-@\t\r]""")


@pytest.fixture
def payload_addresses():
    # The payloads sit in the description; "Payload 1" … keep the order the same on every
    # database collation.
    return [
        SystemAddressFactory(
            name=f"Payload {number}",
            email=f"payload{number}@calserver.example",
            language="en",
            description=payload,
        )
        for number, payload in enumerate(PAYLOADS, start=1)
    ]


def export(client, export_format: str) -> bytes:
    client.post("/i18n/setlang/", {"language": "en"})
    response = client.get(reverse("inventory:systemaddress_list"), {"_export": export_format})
    content = b"".join(response.streaming_content)
    response.close()
    return content


def test_csv_export_quotes_every_field_and_neutralises_every_piece(
    client_for, admin, payload_addresses
):
    text = export(client_for(admin), "csv").decode("utf-8")

    assert text == (
        "\ufeff"
        '"Name","E-mail address","Language","Description"\r\n'
        '"Payload 1","payload1@calserver.example","English","\'=2+2"\r\n'
        '"Payload 2","payload2@calserver.example","English","x;\'=2+2;"\r\n'
        '"Payload 3","payload3@calserver.example","English","a,\'@SUM(1)"\r\n'
        '"Payload 4","payload4@calserver.example","English","\'\t\'=1"\r\n'
        '"Payload 5","payload5@calserver.example","English","\'+1"\r\n'
        '"Payload 6","payload6@calserver.example","English","\'-1"\r\n'
    )


@pytest.mark.parametrize("separator", [";", ",", "\t"])
def test_csv_export_split_at_any_separator_starts_no_formula(
    client_for, admin, payload_addresses, separator
):
    # What a spreadsheet that splits at another separator than the file's (or ignores the
    # quotes) makes of each line: no piece may start a formula.
    text = export(client_for(admin), "csv").decode("utf-8-sig")

    pieces = [piece for line in text.splitlines() for piece in line.split(separator)]
    assert [piece for piece in pieces if FORMULA_START.match(piece)] == []
    assert [row[3] for row in csv.reader(io.StringIO(text))][1:] == [
        neutralise_csv(payload) for payload in PAYLOADS
    ]


def test_xlsx_export_stores_formula_payloads_as_text(client_for, admin, payload_addresses):
    sheet = openpyxl.load_workbook(io.BytesIO(export(client_for(admin), "xlsx"))).active

    cells = [cell for row in sheet.iter_rows() for cell in row]
    assert [cell.coordinate for cell in cells if cell.data_type == "f"] == []
    # One cell is not split further: only its first character needs the apostrophe.
    assert [row[3] for row in sheet.iter_rows(min_row=2, values_only=True)] == [
        "'=2+2",
        "x;=2+2;",
        "a,@SUM(1)",
        "'\t=1",
        "'+1",
        "'-1",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=2+2", "'=2+2"),
        ("x;=2+2;", "x;'=2+2;"),
        ("a,@SUM(1)", "a,'@SUM(1)"),
        ("\t=1", "'\t'=1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        # A spreadsheet may trim spaces and drop quotes before it looks for a formula.
        ("x; =1", "x; '=1"),
        ('x;"=HYPERLINK(1)', "x;\"'=HYPERLINK(1)"),
        ("Zeile\n@SUM(1)", "Zeile\n'@SUM(1)"),
        ("\r=1", "'\r'=1"),
        # Plain text stays readable; neutralising twice changes nothing.
        ("labor@calserver.example", "labor@calserver.example"),
        ("Jena, Werk 2; Halle 3", "Jena, Werk 2; Halle 3"),
        ("Temperatur -5 °C", "Temperatur -5 °C"),
        ("'=2+2", "'=2+2"),
    ],
)
def test_neutralise_csv(value, expected):
    assert neutralise_csv(value) == expected
    assert neutralise_csv(expected) == expected


def test_csv_export_uses_the_separator_of_the_readers_spreadsheet(client_for, admin):
    SystemAddressFactory(name="Labor, Nord", email="labor@calserver.example", language="de")
    client = client_for(admin)

    client.post("/i18n/setlang/", {"language": "de"})
    response = client.get(reverse("inventory:systemaddress_list"), {"_export": "csv"})
    german = b"".join(response.streaming_content).decode("utf-8")
    english = export(client, "csv").decode("utf-8")

    # A German Excel splits at ";" and reads the BOM as UTF-8; every field is quoted.
    assert german.startswith("\ufeff")
    assert german.splitlines()[1] == '"Labor, Nord";"labor@calserver.example";"Deutsch";""'
    assert english.splitlines()[1] == '"Labor, Nord","labor@calserver.example","German",""'
    assert [row[:2] for row in csv.reader(io.StringIO(german[1:]), delimiter=";")][1] == [
        "Labor, Nord",
        "labor@calserver.example",
    ]
