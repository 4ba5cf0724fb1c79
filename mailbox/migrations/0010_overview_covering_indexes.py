"""The overview's counts as index-only scans: the creation-time and sent-time indexes
carry the columns the counts group and filter by (status, configuration, team, creator).

Each index is built anew under a temporary name without blocking the outbox (on
PostgreSQL, calmail.common.migration_operations), the old one dropped, the new one renamed:
the outbox list's sorts by these columns never go without an index. SQLite has no INCLUDE
and keeps plain indexes.
"""

from django.db import migrations, models

from calmail.common.migration_operations import AddIndexOnline

CREATED_INCLUDE = ["status", "owner_group", "created_by"]
SENT_INCLUDE = ["status", "smtp_configuration", "owner_group", "created_by"]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("mailbox", "0009_content_retention"),
    ]

    operations = [
        AddIndexOnline(
            model_name="outboxmessage",
            index=models.Index(
                fields=["-created_at", "-id"],
                include=CREATED_INCLUDE,
                name="outbox_created_idx_new",
            ),
        ),
        migrations.RemoveIndex(model_name="outboxmessage", name="outbox_created_idx"),
        migrations.RenameIndex(
            model_name="outboxmessage",
            new_name="outbox_created_idx",
            old_name="outbox_created_idx_new",
        ),
        AddIndexOnline(
            model_name="outboxmessage",
            index=models.Index(
                fields=["sent_at", "id"], include=SENT_INCLUDE, name="outbox_sent_idx_new"
            ),
        ),
        migrations.RemoveIndex(model_name="outboxmessage", name="outbox_sent_idx"),
        migrations.RenameIndex(
            model_name="outboxmessage", new_name="outbox_sent_idx", old_name="outbox_sent_idx_new"
        ),
    ]
