"""The column chooser of every list page (calmail.common.lists.ColumnChoiceView): per user
and table, remembered, checked against the table's columns; exports keep every column."""

import csv
import io

import pytest
from django.test import Client
from django.urls import reverse

from calmail.common.models import ColumnChoice
from calmail.common.tables import CalmailTable
from mailbox.tables import OutboxTable
from tests.factories import OutboxMessageFactory

pytestmark = pytest.mark.django_db

CHOOSE = reverse("common:columns")
OUTBOX = reverse("mailbox:list")
OUTBOX_KEY = "mailbox.OutboxTable"
OUTBOX_DEFAULTS = [
    "mail_action",
    "recipient",
    "attachment_count",
    "status",
    "sent_at",
    "error_message",
    "content",
]
ALL_OUTBOX_COLUMNS = [
    "Mail action",
    "Recipient",
    "User/Customer",
    "Address type",
    "Attachments",
    "Export type",
    "Parameters",
    "Attachment type",
    "Exported attachments",
    "Status",
    "Sent",
    "Error message",
    "Created",
    "Message content",
]


def english(client):
    client.post("/i18n/setlang/", {"language": "en"})
    return client


def visible(response) -> list[str]:
    """The data columns the page shows (not the checkboxes and the row menu)."""
    table = response.context["table"]
    return [name for name in table.choosable_columns() if table.columns.columns[name].visible]


def test_outbox_shows_the_default_columns_until_the_user_chooses(client_for, admin):
    OutboxMessageFactory(status="failed", error_message="550 unknown user")

    response = client_for(admin).get(OUTBOX)

    html = response.content.decode()
    assert visible(response) == OUTBOX_DEFAULTS
    chooser = response.context["column_chooser"]
    assert chooser["key"] == OUTBOX_KEY
    assert [column["name"] for column in chooser["columns"]] == OutboxTable.choosable_columns()
    assert len(chooser["columns"]) == 14
    assert [c["name"] for c in chooser["columns"] if c["visible"]] == OUTBOX_DEFAULTS
    assert 'data-testid="column-chooser"' in html
    assert 'name="columns" value="parameters" id="column-choice-parameters">' in html
    assert 'name="columns" value="status" id="column-choice-status" checked>' in html
    assert "csrfmiddlewaretoken" in html


def test_column_choice_is_remembered_for_the_user_and_table(client_for, admin, viewer):
    client = client_for(admin)

    response = client.post(
        CHOOSE,
        {"table": OUTBOX_KEY, "columns": ["status", "parameters", "recipient"], "next": OUTBOX},
    )

    assert response.status_code == 302
    assert response["Location"] == OUTBOX
    choice = ColumnChoice.objects.get()
    assert (choice.user, choice.table_key) == (admin, OUTBOX_KEY)
    # Stored in the table's order, whatever order the form sent.
    assert choice.columns == ["recipient", "parameters", "status"]
    assert visible(client.get(OUTBOX)) == ["recipient", "parameters", "status"]
    # Another list of the same user keeps its defaults.
    templates = client.get(reverse("templates_app:list"))
    assert visible(templates) == list(templates.context["table"].default_columns)
    # Another user keeps the outbox's defaults.
    assert visible(client_for(viewer).get(OUTBOX)) == OUTBOX_DEFAULTS


def test_column_choice_replaces_the_previous_one(client_for, admin):
    client = client_for(admin)
    client.post(CHOOSE, {"table": OUTBOX_KEY, "columns": ["status"]})

    client.post(CHOOSE, {"table": OUTBOX_KEY, "columns": ["created_at", "status"]})

    assert list(ColumnChoice.objects.values_list("columns", flat=True)) == [
        ["status", "created_at"]
    ]


def test_column_choice_ignores_unknown_column_names(client_for, admin):
    client = client_for(admin)

    client.post(
        CHOOSE,
        {
            "table": OUTBOX_KEY,
            # The row checkboxes and the row menu are controls, not choosable columns.
            "columns": ["status", "password", "selection", "actions", "<script>"],
        },
    )

    assert ColumnChoice.objects.get().columns == ["status"]
    assert visible(client.get(OUTBOX)) == ["status"]


def test_column_choice_with_no_known_column_keeps_the_columns_and_says_so(client_for, admin):
    client = english(client_for(admin))
    client.post(CHOOSE, {"table": OUTBOX_KEY, "columns": ["status", "content"]})

    response = client.post(
        CHOOSE, {"table": OUTBOX_KEY, "columns": ["nonsense"], "next": OUTBOX}, follow=True
    )

    assert ColumnChoice.objects.get().columns == ["status", "content"]
    assert visible(response) == ["status", "content"]
    assert "Choose at least one column." in response.content.decode()


def test_column_choice_stored_names_the_table_lost_are_ignored(client_for, admin):
    # A column removed from the table since the user chose it.
    ColumnChoice.objects.create(user=admin, table_key=OUTBOX_KEY, columns=["gone", "status"])
    assert visible(client_for(admin).get(OUTBOX)) == ["status"]

    ColumnChoice.objects.filter(user=admin).update(columns=["gone"])
    assert visible(client_for(admin).get(OUTBOX)) == OUTBOX_DEFAULTS


def test_column_choice_reset_returns_to_the_defaults(client_for, admin):
    client = client_for(admin)
    client.post(CHOOSE, {"table": OUTBOX_KEY, "columns": ["status"]})

    client.post(CHOOSE, {"table": OUTBOX_KEY, "columns": ["status"], "reset": "1"})

    assert ColumnChoice.objects.count() == 0
    assert visible(client.get(OUTBOX)) == OUTBOX_DEFAULTS


def test_column_choice_for_an_unknown_table_is_404(client_for, admin):
    response = client_for(admin).post(CHOOSE, {"table": "auth.User", "columns": ["password"]})

    assert response.status_code == 404
    assert ColumnChoice.objects.count() == 0


def test_column_choice_goes_back_only_to_our_own_pages(client_for, admin):
    response = client_for(admin).post(
        CHOOSE, {"table": OUTBOX_KEY, "columns": ["status"], "next": "https://evil.example/"}
    )

    assert response["Location"] == reverse("home")
    assert ColumnChoice.objects.get().columns == ["status"]


def test_column_choice_needs_the_csrf_token(admin):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)

    response = client.post(CHOOSE, {"table": OUTBOX_KEY, "columns": ["status"]})

    assert response.status_code == 403
    assert ColumnChoice.objects.count() == 0


def test_column_choice_with_the_pages_csrf_token_is_taken(admin):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    page = client.get(OUTBOX)
    token = page.context["csrf_token"]

    response = client.post(
        CHOOSE, {"table": OUTBOX_KEY, "columns": ["status"], "csrfmiddlewaretoken": str(token)}
    )

    assert response.status_code == 302
    assert ColumnChoice.objects.get().columns == ["status"]


def test_column_choice_refuses_anonymous_users(client):
    response = client.post(CHOOSE, {"table": OUTBOX_KEY, "columns": ["status"]})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert ColumnChoice.objects.count() == 0


def test_column_choice_refuses_get(client_for, admin):
    response = client_for(admin).get(CHOOSE, {"table": OUTBOX_KEY, "columns": ["status"]})

    assert response.status_code == 405
    assert ColumnChoice.objects.count() == 0


def test_export_keeps_every_column_whatever_the_user_chose(client_for, admin):
    OutboxMessageFactory(status="sent", subject="Kalibrierschein 7")
    client = english(client_for(admin))
    client.post(CHOOSE, {"table": OUTBOX_KEY, "columns": ["status"]})

    response = client.get(OUTBOX, {"_export": "csv"})

    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0] == ALL_OUTBOX_COLUMNS
    assert rows[1][-1] == "Kalibrierschein 7"
    assert visible(client.get(OUTBOX)) == ["status"]


def test_filter_on_a_hidden_column_still_applies_and_is_announced(client_for, admin):
    client = english(client_for(admin))
    OutboxMessageFactory(source="action", source_label="Monatsbericht", subject="März")
    OutboxMessageFactory(source="compose", subject="Rückfrage")
    client.post(CHOOSE, {"table": OUTBOX_KEY, "columns": ["status", "recipient"]})

    response = client.get(OUTBOX, {"source": "action", "subject": "mä", "address_type": ""})

    html = response.content.decode()
    subjects = [row.record.subject for row in response.context["table"].page.object_list]
    assert subjects == ["März"]
    assert response.context["hidden_filtered_columns"] == ["Mail action", "Message content"]
    assert "Filters on the hidden columns Mail action, Message content are active." in html


def test_filter_on_a_shown_column_is_not_announced(client_for, admin):
    client = english(client_for(admin))

    response = client.get(OUTBOX, {"status": "failed", "error_message": "550", "q": "x"})

    assert response.context["hidden_filtered_columns"] == []
    assert 'data-testid="hidden-filter-notice"' not in response.content.decode()


def test_range_filter_on_a_hidden_column_is_announced(client_for, admin):
    client = english(client_for(admin))

    response = client.get(OUTBOX, {"exported_attachments_min": "1"})

    assert response.context["hidden_filtered_columns"] == ["Exported attachments"]
    assert "A filter on the hidden column Exported attachments is active." in (
        response.content.decode()
    )


LIST_PAGES = [
    "mailbox:list",
    "mailbox:attempts",
    "actions:list",
    "templates_app:list",
    "smtpconfig:list",
    "maillog:list",
    "accounts:user_list",
    "accounts:team_list",
    "inventory:distributionlist_list",
    "inventory:systemaddress_list",
    "inventory:customer_list",
    "inventory:instrument_list",
]


@pytest.mark.parametrize("url_name", LIST_PAGES)
def test_every_list_page_has_the_column_chooser(client_for, admin, url_name):
    client = client_for(admin)
    table_class = type(client.get(reverse(url_name)).context["table"])
    first = table_class.choosable_columns()[0]

    client.post(CHOOSE, {"table": table_class.column_key(), "columns": [first]})
    response = client.get(reverse(url_name))

    assert issubclass(table_class, CalmailTable)
    assert 'data-testid="column-chooser"' in response.content.decode()
    assert visible(response) == [first]
    defaults = table_class.default_columns
    assert defaults is None or set(defaults) <= set(table_class.choosable_columns())
