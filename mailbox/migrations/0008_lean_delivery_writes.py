"""Fewer writes per delivered mail, and the mail built once at enqueue.

- raw_message: the mail's bytes, built by enqueue() (mailbox/mime.py).
- Every status change of a mail writes a new row version that each index containing the
  row must point to. Left out here: the foreign keys' own indexes where a composite index
  starts with the column, the LIKE (text_pattern_ops) twins PostgreSQL gets for unique
  CharFields (the uniqueness is now a constraint, which has none), and (status,
  next_attempt_at), replaced by a partial index of planned mail only.

Non-atomic, so that on PostgreSQL the new indexes are built without blocking the outbox
(calmail.common.migration_operations); the new unique constraints exist before the old
ones go, so uniqueness never lapses.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from calmail.common.migration_operations import AddIndexOnline, AddUniqueConstraintOnline


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("actions", "0003_action_purged_sent_count"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("mailbox", "0007_outbox_sort_indexes"),
        ("smtpconfig", "0002_role_permissions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="outboxmessage",
            name="raw_message",
            field=models.BinaryField(blank=True, default=b""),
        ),
        AddIndexOnline(
            model_name="outboxmessage",
            index=models.Index(
                condition=models.Q(("status", "scheduled")),
                fields=["next_attempt_at"],
                name="outbox_scheduled_idx",
            ),
        ),
        migrations.RemoveIndex(
            model_name="outboxmessage",
            name="outbox_due_idx",
        ),
        AddUniqueConstraintOnline(
            model_name="outboxmessage",
            constraint=models.UniqueConstraint(
                fields=("message_id",), name="outbox_message_id_unique"
            ),
        ),
        AddUniqueConstraintOnline(
            model_name="outboxmessage",
            constraint=models.UniqueConstraint(
                fields=("idempotency_key",), name="outbox_idempotency_key_unique"
            ),
        ),
        migrations.AlterField(
            model_name="outboxmessage",
            name="idempotency_key",
            field=models.CharField(blank=True, max_length=200, null=True),
        ),
        migrations.AlterField(
            model_name="outboxmessage",
            name="message_id",
            field=models.CharField(max_length=255, verbose_name="Message-ID"),
        ),
        migrations.AlterField(
            model_name="deliveryattempt",
            name="message",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attempts",
                to="mailbox.outboxmessage",
            ),
        ),
        migrations.AlterField(
            model_name="deliveryattempt",
            name="smtp_configuration",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="smtpconfig.smtpconfiguration",
                verbose_name="SMTP configuration",
            ),
        ),
        migrations.AlterField(
            model_name="outboxmessage",
            name="created_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="created by",
            ),
        ),
        migrations.AlterField(
            model_name="outboxmessage",
            name="owner_group",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="auth.group",
                verbose_name="group",
            ),
        ),
        migrations.AlterField(
            model_name="outboxmessage",
            name="smtp_configuration",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="messages",
                to="smtpconfig.smtpconfiguration",
                verbose_name="SMTP configuration",
            ),
        ),
    ]
