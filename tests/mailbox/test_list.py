"""The outbox list: one filter per column, sorting, lazy pagination, exports, query counts."""

import datetime
import io

import openpyxl
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_tables2.paginators import LazyPaginator

from mailbox.models import OutboxMessage
from tests.csv_export import read_csv
from tests.factories import OutboxMessageFactory

UTC = datetime.UTC

COLUMNS = [
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


def created(message, when):
    # created_at is set on insert (auto_now_add); tests move it afterwards.
    OutboxMessage.objects.filter(pk=message.pk).update(created_at=when)
    message.refresh_from_db()
    return message


@pytest.fixture
def three_mails(db):
    """Mails that differ in every column, created in the order A, B, C."""
    a = OutboxMessageFactory(
        source="action",
        source_label="Monatsbericht Kalibrierung",
        recipient="anna@kunde-a.de",
        recipient_owner="Kunde A GmbH",
        address_type="customer",
        attachment_count=2,
        export_type="excel",
        parameters={"report": "due-instruments", "customer": "Müller"},
        attachment_type="file",
        exported_attachments=2,
        status="sent",
        sent_at=datetime.datetime(2025, 3, 10, 9, 0, tzinfo=UTC),
        subject="Fällige Prüfmittel März",
    )
    b = OutboxMessageFactory(
        source="compose",
        recipient="bernd@example.com",
        recipient_owner="Bernd Berger",
        address_type="user",
        attachment_count=0,
        export_type="",
        parameters={},
        status="failed",
        error_message="550 5.1.1 <bernd@example.com>: Recipient address rejected (mailbox unknown)",
        subject="Rückfrage Auftrag",
    )
    c = OutboxMessageFactory(
        source="test",
        recipient="verteiler@labor.de",
        address_type="distribution",
        attachment_count=1,
        export_type="pdf_html",
        parameters={"link": "https://calmail.example/d/1"},
        attachment_type="link",
        exported_attachments=1,
        status="sent",
        sent_at=datetime.datetime(2025, 5, 15, 10, 0, tzinfo=UTC),
        subject="Testmail Verteiler",
    )
    created(a, datetime.datetime(2025, 3, 10, 8, 59, tzinfo=UTC))
    created(b, datetime.datetime(2025, 4, 2, 12, 0, tzinfo=UTC))
    created(c, datetime.datetime(2025, 5, 15, 9, 59, tzinfo=UTC))
    return {"A": a, "B": b, "C": c}


def names(response, mails) -> list[str]:
    by_pk = {message.pk: name for name, message in mails.items()}
    return [by_pk[row.record.pk] for row in response.context["table"].page.object_list]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["C", "B", "A"]),
        ({"q": "verteiler"}, ["C"]),
        ({"q": "rückfrage"}, ["B"]),
        ({"source": "action"}, ["A"]),
        ({"source_label": "monatsbericht"}, ["A"]),
        ({"recipient": "example.com"}, ["B"]),
        ({"recipient_owner": "kunde"}, ["A"]),
        ({"address_type": "distribution"}, ["C"]),
        ({"attachment_count_min": "1"}, ["C", "A"]),
        ({"attachment_count_max": "0"}, ["B"]),
        ({"export_type": "excel"}, ["A"]),
        ({"export_type": "none"}, ["B"]),
        ({"parameters": "due-instr"}, ["A"]),
        ({"parameters": "Müller"}, ["A"]),
        ({"parameters": "https://calmail"}, ["C"]),
        ({"attachment_type": "link"}, ["C"]),
        ({"exported_attachments_min": "2"}, ["A"]),
        ({"status": "failed"}, ["B"]),
        ({"status": "sent"}, ["C", "A"]),
        ({"sent_at_min": "2025-05-01"}, ["C"]),
        ({"sent_at_max": "2025-04-01"}, ["A"]),
        ({"error_message": "rejected"}, ["B"]),
        ({"created_at_min": "2025-04-01", "created_at_max": "2025-04-30"}, ["B"]),
        ({"created_at_max": "2025-03-10"}, ["A"]),
        ({"subject": "testmail"}, ["C"]),
        ({"status": "sent", "attachment_type": "file"}, ["A"]),
    ],
)
def test_outbox_list_each_filter_narrows_rows(client_for, admin, three_mails, query, expected):
    response = client_for(admin).get(reverse("mailbox:list"), query)

    assert names(response, three_mails) == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("created_at", ["A", "B", "C"]),
        ("-created_at", ["C", "B", "A"]),
        ("-attachment_count", ["A", "C", "B"]),
        ("recipient", ["A", "B", "C"]),
        ("content", ["A", "B", "C"]),
        ("-content", ["C", "B", "A"]),
        ("mail_action", ["B", "C", "A"]),
        ("status", ["B", "A", "C"]),
        ("address_type", ["A", "C", "B"]),
        ("-exported_attachments", ["A", "C", "B"]),
    ],
)
def test_outbox_list_sorting(client_for, admin, three_mails, sort, expected):
    response = client_for(admin).get(reverse("mailbox:list"), {"sort": sort})

    assert names(response, three_mails) == expected


@pytest.mark.django_db
def test_outbox_list_every_column_but_the_controls_sorts(client_for, admin, three_mails):
    client = client_for(admin)
    table = client.get(reverse("mailbox:list")).context["table"]
    # Hidden columns (not among the page's defaults) sort too.
    orderable = [column.name for column in table.columns.iterall() if column.orderable]

    results = {}
    for name in orderable:
        for sort in (name, f"-{name}"):
            response = client.get(reverse("mailbox:list"), {"sort": sort})
            results[sort] = sorted(names(response, three_mails))

    assert orderable == [
        "mail_action",
        "recipient",
        "recipient_owner",
        "address_type",
        "attachment_count",
        "export_type",
        "parameters",
        "attachment_type",
        "exported_attachments",
        "status",
        "sent_at",
        "error_message",
        "created_at",
        "content",
    ]
    assert results == {sort: ["A", "B", "C"] for sort in results}


@pytest.mark.django_db
def test_outbox_list_invalid_filter_shows_error_and_no_rows(client_for, admin, three_mails):
    response = client_for(admin).get(reverse("mailbox:list"), {"attachment_count_min": "viele"})

    assert list(response.context["table"].page.object_list) == []
    assert "attachment_count" in response.context["filter"].form.errors


@pytest.mark.django_db
def test_outbox_list_page_size_is_capped_and_pages_lazily(client_for, admin, settings, three_mails):
    settings.CALMAIL_MAX_PAGE_SIZE = 2
    client = client_for(admin)

    first = client.get(reverse("mailbox:list"), {"per_page": "100000"})
    second = client.get(reverse("mailbox:list"), {"per_page": "100000", "page": "2"})

    table = first.context["table"]
    assert isinstance(table.paginator, LazyPaginator)
    assert table.paginator.per_page == 2
    assert names(first, three_mails) == ["C", "B"]
    assert (table.page.has_next(), table.page.has_previous()) == (True, False)
    assert names(second, three_mails) == ["A"]
    assert second.context["table"].page.has_next() is False
    assert 'href="?per_page=100000&amp;page=2"' in first.content.decode()


@pytest.mark.django_db
def test_outbox_list_page_past_the_end_shows_first_page(client_for, admin, three_mails):
    response = client_for(admin).get(reverse("mailbox:list"), {"page": "99"})

    assert names(response, three_mails) == ["C", "B", "A"]


@pytest.mark.django_db
def test_outbox_list_never_counts_rows(client_for, admin, three_mails):
    client = client_for(admin)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("mailbox:list"), {"status": "sent", "page": "1"})

    statements = [query["sql"].upper() for query in queries.captured_queries]
    assert response.status_code == 200
    assert [sql for sql in statements if "COUNT(" in sql] == []


@pytest.mark.django_db
def test_outbox_list_query_count_does_not_grow_with_rows(
    client_for, admin, django_assert_num_queries
):
    client = client_for(admin)
    OutboxMessageFactory(status="failed", error_message="550 unknown")
    client.get(reverse("mailbox:list"))  # warm caches (content types, session)
    with CaptureQueriesContext(connection) as one_row:
        client.get(reverse("mailbox:list"))
    OutboxMessageFactory(status="sent", parameters={"a": 1})
    OutboxMessageFactory(status="queued", source="action", source_label="Bericht")

    with django_assert_num_queries(len(one_row.captured_queries)):
        response = client.get(reverse("mailbox:list"))

    assert len(response.context["table"].page.object_list) == 3


@pytest.mark.django_db
def test_outbox_list_renders_badges_tooltips_and_detail_links(
    client_for, english, admin, three_mails
):
    columns = ["mail_action", "recipient", "parameters", "status", "error_message", "content"]
    client = client_for(admin)
    client.post(reverse("common:columns"), {"table": "mailbox.OutboxTable", "columns": columns})

    response = client.get(reverse("mailbox:list"))

    html = response.content.decode()
    b = three_mails["B"]
    assert '<span class="badge text-bg-danger">failed</span>' in html
    assert '<span class="badge text-bg-success">sent</span>' in html
    # The long error is cut in the cell and whole in the tooltip.
    assert f'title="{b.error_message.replace("<", "&lt;").replace(">", "&gt;")}"' in html
    assert f'href="{reverse("mailbox:detail", args=[b.pk])}"' in html
    assert "Report: due-instruments · customer: Müller" in html
    assert "<code>" not in html
    assert "Monatsbericht Kalibrierung" in html
    # Administrators get the action entries that fit each mail's status.
    assert f'href="{reverse("mailbox:resend", args=[b.pk])}"' in html
    assert f'href="{reverse("mailbox:cancel", args=[b.pk])}"' not in html


@pytest.mark.django_db
def test_outbox_list_viewer_has_no_bulk_form_or_action_links(client_for, viewer, team):
    viewer.groups.add(team)
    message = OutboxMessageFactory(owner_group=team, status="failed")

    response = client_for(viewer).get(reverse("mailbox:list"))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="bulk-form"' not in html
    assert reverse("mailbox:resend", args=[message.pk]) not in html
    assert reverse("mailbox:delete", args=[message.pk]) not in html
    assert reverse("mailbox:detail", args=[message.pk]) in html


# --- export ---------------------------------------------------------------------------------


def export_csv(client, query=None) -> list[list[str]]:
    response = client.get(reverse("mailbox:list"), {**(query or {}), "_export": "csv"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="outbox.csv"'
    content = b"".join(response.streaming_content).decode("utf-8-sig")
    return read_csv(content)


@pytest.mark.django_db
def test_outbox_export_csv_has_the_14_columns_as_plain_text(
    client_for, english, admin, three_mails
):
    rows = export_csv(client_for(admin), {"sort": "created_at"})

    assert rows[0] == COLUMNS
    assert rows[1] == [
        "Monatsbericht Kalibrierung",
        "anna@kunde-a.de",
        "Kunde A GmbH",
        "Customer",
        "2",
        "excel",
        '{"customer": "Müller", "report": "due-instruments"}',
        "file",
        "2",
        "sent",
        "2025-03-10 10:00:00",  # local time (Europe/Berlin)
        "",
        "2025-03-10 09:59:00",
        "Fällige Prüfmittel März",
    ]
    assert rows[2][:4] == ["written by hand", "bernd@example.com", "Bernd Berger", "User"]
    assert rows[2][5] == "none"
    assert rows[2][9:12] == ["failed", "", three_mails["B"].error_message]
    assert len(rows) == 4
    assert not any("<" in cell and "span" in cell for row in rows for cell in row)


@pytest.mark.django_db
def test_outbox_export_follows_filter_and_visibility(client_for, viewer, team, three_mails):
    three_mails["A"].owner_group = team
    three_mails["A"].save()
    three_mails["C"].owner_group = team
    three_mails["C"].save()
    viewer.groups.add(team)

    rows = export_csv(client_for(viewer), {"attachment_type": "link"})

    assert [row[1] for row in rows[1:]] == ["verteiler@labor.de"]


@pytest.mark.django_db
def test_outbox_export_neutralises_spreadsheet_formulas(client_for, admin):
    OutboxMessageFactory(
        source="action",
        source_label='=HYPERLINK("http://evil.example")',
        recipient="@sum(a1)",
        recipient_owner="+49 30 1234",
        error_message="-1 Fehler",
        subject="=1+1",
    )

    rows = export_csv(client_for(admin))

    row = dict(zip(COLUMNS, rows[1], strict=True))
    assert row["Mail action"] == '\'=HYPERLINK("http://evil.example")'
    assert row["Recipient"] == "'@sum(a1)"
    assert row["User/Customer"] == "'+49 30 1234"
    assert row["Error message"] == "'-1 Fehler"
    assert row["Message content"] == "'=1+1"


@pytest.mark.django_db
def test_outbox_export_xlsx_has_header_typed_values_and_rows(
    client_for, english, admin, three_mails
):
    response = client_for(admin).get(
        reverse("mailbox:list"), {"_export": "xlsx", "sort": "created_at"}
    )
    content = b"".join(response.streaming_content)

    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0] == COLUMNS
    assert [row[1] for row in values[1:]] == [
        "anna@kunde-a.de",
        "bernd@example.com",
        "verteiler@labor.de",
    ]
    assert values[1][4] == 2
    assert values[1][10] == datetime.datetime(2025, 3, 10, 10, 0)
    assert values[2][10] is None or values[2][10] == ""


@pytest.mark.django_db
def test_outbox_export_does_not_count_either(client_for, admin, three_mails):
    client = client_for(admin)

    with CaptureQueriesContext(connection) as queries:
        rows = export_csv(client)

    assert len(rows) == 4
    assert [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()] == []
