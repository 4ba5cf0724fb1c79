"""The trigram indexes (migration 0004) match the SQL the list's text filters produce."""

import pytest
from django.db import connection

from mailbox.filters import OutboxFilter
from mailbox.models import OutboxMessage
from tests.factories import OutboxMessageFactory

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="trigram indexes exist on PostgreSQL only"
)


def plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        # Only the indexes' bitmap scans are left: if the planner still cannot use the
        # trigram index, the expression does not match and it falls back to a Seq Scan.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "index"),
    [
        ({"recipient": "kunde17"}, "outbox_recipient_trgm"),
        ({"subject": "INV-4711"}, "outbox_subject_trgm"),
        ({"source_label": "Erinnerung"}, "outbox_source_label_trgm"),
        ({"recipient_owner": "Kunde 17"}, "outbox_owner_trgm"),
        ({"error_message": "rejected"}, "outbox_error_trgm"),
        ({"parameters": "overdue"}, "outbox_parameters_trgm"),
        ({"q": "kunde17"}, "outbox_subject_trgm"),
    ],
)
def test_text_filter_can_use_its_trigram_index(query, index):
    OutboxMessageFactory()
    queryset = OutboxFilter(query, queryset=OutboxMessage.objects.all()).qs

    assert index in plan(queryset)
