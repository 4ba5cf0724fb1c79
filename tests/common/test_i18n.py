"""The German catalogue is complete and the compiled .mo matches it."""

from pathlib import Path

import polib
from django.conf import settings

PO_FILE = Path(settings.BASE_DIR) / "locale" / "de" / "LC_MESSAGES" / "django.po"


def test_german_catalogue_has_no_untranslated_or_fuzzy_entries():
    catalogue = polib.pofile(str(PO_FILE))

    untranslated = [entry.msgid for entry in catalogue.untranslated_entries()]
    fuzzy = [entry.msgid for entry in catalogue.fuzzy_entries()]

    assert (untranslated, fuzzy) == ([], [])


def test_german_mo_file_is_compiled_from_the_po_file():
    catalogue = polib.pofile(str(PO_FILE))
    compiled = polib.mofile(str(PO_FILE.with_suffix(".mo")))

    expected = {
        (e.msgid, e.msgstr or tuple(e.msgstr_plural.values()))
        for e in catalogue.translated_entries()
    }
    actual = {(e.msgid, e.msgstr or tuple(e.msgstr_plural.values())) for e in compiled if e.msgid}

    assert actual == expected
