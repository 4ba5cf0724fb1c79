"""Evidence retention: a mail's record is kept for years, its content (bodies, the raw
mail, attachment files) only for CALMAIL_OUTBOX_RETENTION_DAYS (mailbox.retention).

- content_purged_at: when the content went.
- outbox_content_kept_idx: the content purge walks only mails that still have content.
- attempt_failed_time_idx: the overview's failed mails per hour and day.

Non-atomic, so that on PostgreSQL the indexes are built without blocking the outbox
(calmail.common.migration_operations).
"""

from django.db import migrations, models

from calmail.common.migration_operations import AddIndexOnline


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("mailbox", "0008_lean_delivery_writes"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboxmessage",
            name="content_purged_at",
            field=models.DateTimeField(
                blank=True, editable=False, null=True, verbose_name="content deleted"
            ),
        ),
        AddIndexOnline(
            model_name="deliveryattempt",
            index=models.Index(
                condition=models.Q(("outcome", "failed")),
                fields=["started_at"],
                name="attempt_failed_time_idx",
            ),
        ),
        AddIndexOnline(
            model_name="outboxmessage",
            index=models.Index(
                condition=models.Q(("content_purged_at__isnull", True)),
                fields=["created_at"],
                name="outbox_content_kept_idx",
            ),
        ),
    ]
