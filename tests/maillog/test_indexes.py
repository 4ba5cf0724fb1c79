import pytest
from django.db import connection


@pytest.mark.django_db
def test_attempt_time_index_exists_on_every_database():
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, "mailbox_deliveryattempt")

    assert "attempt_time_idx" in indexes


@pytest.mark.django_db
def test_trigram_indexes_exist_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("trigram indexes exist on PostgreSQL only")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE indexname IN "
            "('log_search_trgm', 'attempt_worker_trgm', 'attempt_reply_trgm') ORDER BY 1"
        )
        names = [row[0] for row in cursor.fetchall()]

    assert names == ["attempt_reply_trgm", "attempt_worker_trgm", "log_search_trgm"]
