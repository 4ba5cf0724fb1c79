"""Migration operations that leave a large table writable while they run.

On PostgreSQL a plain CREATE INDEX blocks every INSERT and UPDATE of the table until
the index is built: seconds at a million outbox rows, during which no mail can be
enqueued or delivered. These build it CONCURRENTLY instead (slower, but writes go on).
Django's own AddIndexConcurrently refuses every other database; these fall back to the
plain operation there (SQLite rebuilds tables anyway). A migration using them must set
``atomic = False``: PostgreSQL cannot build an index concurrently inside a transaction.
"""

from django.db.migrations.operations import AddConstraint, AddIndex


def _is_postgresql(schema_editor) -> bool:
    return schema_editor.connection.vendor == "postgresql"


class AddIndexOnline(AddIndex):
    """AddIndex, built with CREATE INDEX CONCURRENTLY on PostgreSQL."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not _is_postgresql(schema_editor):
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, concurrently=True)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if not _is_postgresql(schema_editor):
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)


class AddUniqueConstraintOnline(AddConstraint):
    """AddConstraint for a plain UniqueConstraint over columns. On PostgreSQL its index is
    built concurrently and then attached as the constraint (ADD CONSTRAINT … USING INDEX,
    which takes a moment); uniqueness holds from the moment the index is valid."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not _is_postgresql(schema_editor):
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        constraint = self.constraint
        if constraint.condition or constraint.expressions or constraint.include:
            raise ValueError("AddUniqueConstraintOnline takes columns only.")
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        quote = schema_editor.quote_name
        table = quote(model._meta.db_table)
        name = quote(self.constraint.name)
        columns = ", ".join(
            quote(model._meta.get_field(field).column) for field in self.constraint.fields
        )
        schema_editor.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON {table} ({columns})")
        schema_editor.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE USING INDEX {name}"
        )
