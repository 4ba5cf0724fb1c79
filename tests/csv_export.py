"""Reading list exports back in tests: the separator follows the reader's language
(calmail.common.export.csv_separator), so it is taken from the quoted header row."""

import csv
import io


def read_csv(text: str) -> list[list[str]]:
    """The rows of an exported CSV text (BOM already stripped or not)."""
    text = text.removeprefix("\ufeff")
    header = text.split("\r\n", 1)[0]
    delimiter = ";" if header.startswith('"') and '";"' in header else ","
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))
