"""Trigram indexes for the outbox list's "contains" filters (PostgreSQL only).

Without them, a filter for a value few mails contain makes PostgreSQL read every row of
the outbox (0.5 to 1 s at a million rows); with them it reads only the matching ones. The
expressions are exactly what Django's icontains compiles to (UPPER(column) LIKE ...), so
the planner can use them. SQLite (development, tests) has no such index type: there this
migration does nothing. They are not in the model's Meta because they are
PostgreSQL-specific; makemigrations therefore never sees them.
"""

import logging

from django.db import DatabaseError, migrations, transaction

logger = logging.getLogger(__name__)

# (index name, indexed expression): one per text filter of mailbox.filters.OutboxFilter.
TRIGRAM_INDEXES = [
    ("outbox_recipient_trgm", 'UPPER("recipient"::text)'),
    ("outbox_subject_trgm", 'UPPER("subject"::text)'),
    ("outbox_source_label_trgm", 'UPPER("source_label"::text)'),
    ("outbox_owner_trgm", 'UPPER("recipient_owner"::text)'),
    ("outbox_error_trgm", 'UPPER("error_message")'),
    ("outbox_parameters_trgm", 'UPPER(("parameters")::text)'),
]
TABLE = "mailbox_outboxmessage"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        try:
            # pg_trgm is a trusted extension: the database owner may create it. Where even
            # that is not allowed, the outbox still works, only rare-value filters are slower.
            with transaction.atomic(using=schema_editor.connection.alias):
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except DatabaseError as exc:
            logger.warning(
                "pg_trgm is not available (%s); the outbox text filters stay unindexed. "
                "Ask the database administrator to run CREATE EXTENSION pg_trgm; and "
                "migrate mailbox 0003 then 0004 again.",
                exc.__class__.__name__,
            )
            return
        for name, expression in TRIGRAM_INDEXES:
            cursor.execute(
                f'CREATE INDEX IF NOT EXISTS "{name}" ON "{TABLE}" '
                f"USING gin (({expression}) gin_trgm_ops)"
            )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name, _expression in TRIGRAM_INDEXES:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [("mailbox", "0003_delivery_slots")]

    operations = [migrations.RunPython(create, drop)]
