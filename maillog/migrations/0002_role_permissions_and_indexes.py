"""Role permissions for the Log, and the indexes its lists need beyond the model's own.

- Everyone with a role may open the Log; what they see is limited by maillog.selectors.
- PostgreSQL: trigram indexes for the free-text search and the attempts' text filters
  (as mailbox 0004 does for the outbox); SQLite has no such index type and does without.
- The delivery attempts list is ordered by time over all configurations; the outbox's own
  indexes start with the mail or the configuration, so one on (started_at, id) is added
  here. It lives outside mailbox's Meta so the Log's needs stay with the Log.
"""

import logging

from django.db import DatabaseError, migrations, transaction

from calmail.common.roles import grant_permissions

logger = logging.getLogger(__name__)

SEARCH_INDEX = "log_search_trgm"
ATTEMPT_INDEX = "attempt_time_idx"
# The delivery attempts tab's "contains" filters (PostgreSQL).
ATTEMPT_TRIGRAM_INDEXES = [
    ("attempt_worker_trgm", 'UPPER("worker"::text)'),
    ("attempt_reply_trgm", 'UPPER("reply_text")'),
]


def grant(apps, schema_editor):
    grant_permissions(
        apps,
        {
            "Administrator": ["maillog.view_logentry"],
            "Power user": ["maillog.view_logentry"],
            "Viewer": ["maillog.view_logentry"],
        },
    )


def create_indexes(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(
            f'CREATE INDEX IF NOT EXISTS "{ATTEMPT_INDEX}" ON "mailbox_deliveryattempt" '
            '("started_at" DESC, "id" DESC)'
        )
        if connection.vendor != "postgresql":
            return
        try:
            with transaction.atomic(using=connection.alias):
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except DatabaseError as exc:
            logger.warning(
                "pg_trgm is not available (%s); the log search stays unindexed.",
                exc.__class__.__name__,
            )
            return
        cursor.execute(
            f'CREATE INDEX IF NOT EXISTS "{SEARCH_INDEX}" ON "maillog_logentry" '
            'USING gin ((UPPER("search_text")) gin_trgm_ops)'
        )
        for name, expression in ATTEMPT_TRIGRAM_INDEXES:
            cursor.execute(
                f'CREATE INDEX IF NOT EXISTS "{name}" ON "mailbox_deliveryattempt" '
                f"USING gin (({expression}) gin_trgm_ops)"
            )


def drop_indexes(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f'DROP INDEX IF EXISTS "{SEARCH_INDEX}"')
        cursor.execute(f'DROP INDEX IF EXISTS "{ATTEMPT_INDEX}"')
        for name, _expression in ATTEMPT_TRIGRAM_INDEXES:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [
        ("maillog", "0001_initial"),
        ("common", "0001_roles"),
        ("mailbox", "0005_outbox_claim_index"),
    ]

    operations = [
        migrations.RunPython(grant, migrations.RunPython.noop),
        migrations.RunPython(create_indexes, drop_indexes),
    ]
