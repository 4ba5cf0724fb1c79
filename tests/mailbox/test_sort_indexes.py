"""The sort indexes (migration 0007 and before) exist and match the order the outbox table asks for."""

import pytest
from django.db import connection

from mailbox.models import OutboxMessage
from mailbox.tables import OutboxTable
from tests.factories import OutboxMessageFactory

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the plans checked here are PostgreSQL's"
)

SORT_INDEXES = {
    "status": "outbox_sort_status_idx",
    "sent_at": "outbox_sent_idx",
    "created_at": "outbox_created_idx",
    "mail_action": "outbox_sort_action_idx",
    "recipient": "outbox_sort_recipient_idx",
    "recipient_owner": "outbox_sort_owner_idx",
    "address_type": "outbox_sort_addrtype_idx",
    "attachment_count": "outbox_sort_attcount_idx",
    "export_type": "outbox_sort_export_idx",
    "parameters": "outbox_sort_params_idx",
    "attachment_type": "outbox_sort_atttype_idx",
    "exported_attachments": "outbox_sort_exported_idx",
    "error_message": "outbox_sort_error_idx",
    "content": "outbox_sort_subject_idx",
}


def plan(queryset) -> str:
    sql, params = queryset[:25].query.sql_with_params()
    with connection.cursor() as cursor:
        # With sorting priced out, the planner reads an index in the requested order
        # whenever one matches; if none does, it sorts anyway and the plan says Sort.
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@postgres_only
@pytest.mark.django_db
def test_sort_indexes_exist():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, OutboxMessage._meta.db_table)

    missing = [name for name in SORT_INDEXES.values() if name not in constraints]

    assert missing == []


@postgres_only
@pytest.mark.django_db
@pytest.mark.parametrize("sort", [*SORT_INDEXES, *(f"-{name}" for name in SORT_INDEXES)])
def test_sorted_first_page_reads_its_index(sort):
    OutboxMessageFactory()
    table = OutboxTable(OutboxMessage.objects.all(), order_by=sort)

    explained = plan(table.data.data)

    assert SORT_INDEXES[sort.lstrip("-")] in explained
    assert "Sort" not in explained


def test_every_sortable_column_has_an_index():
    table = OutboxTable(OutboxMessage.objects.none())

    sortable = {column.name for column in table.columns if column.orderable}

    assert sortable == set(SORT_INDEXES)
