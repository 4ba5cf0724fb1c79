"""The delivery attempts' time index (maillog 0002 creates it with SQL) becomes part of
the model's state.

SQLite changes a table by building it anew with the indexes Django knows of: an index
created with plain SQL was lost whenever a later migration altered the attempts table,
depending on the order the migrations happened to run in. Now Django knows it; the index
is created again only where such a rebuild already lost it.
"""

from django.db import migrations, models

CREATE = (
    'CREATE INDEX IF NOT EXISTS "attempt_time_idx" ON "mailbox_deliveryattempt" '
    '("started_at" DESC, "id" DESC)'
)


class Migration(migrations.Migration):
    dependencies = [
        ("mailbox", "0010_overview_covering_indexes"),
        # The index this takes over is created there.
        ("maillog", "0002_role_permissions_and_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="deliveryattempt",
                    index=models.Index(fields=["-started_at", "-id"], name="attempt_time_idx"),
                )
            ],
            database_operations=[migrations.RunSQL(CREATE, migrations.RunSQL.noop)],
        )
    ]
