"""The online migration operations: same schema as Django's, built without a write lock."""

import pytest
from django.db import IntegrityError, connection, models
from django.db.migrations.state import ModelState, ProjectState

from calmail.common.migration_operations import AddIndexOnline, AddUniqueConstraintOnline


def _state_with_table() -> ProjectState:
    state = ProjectState()
    state.add_model(
        ModelState(
            "common",
            "Probe",
            [("id", models.AutoField(primary_key=True)), ("key", models.CharField(max_length=20))],
            {"db_table": "common_migration_probe"},
        )
    )
    return state


def _apply(operation, state: ProjectState) -> ProjectState:
    new_state = state.clone()
    operation.state_forwards("common", new_state)
    with connection.schema_editor(atomic=False) as editor:
        operation.database_forwards("common", editor, state, new_state)
    return new_state


def _unapply(operation, state: ProjectState, new_state: ProjectState) -> None:
    with connection.schema_editor(atomic=False) as editor:
        operation.database_backwards("common", editor, new_state, state)


@pytest.mark.django_db(transaction=True)
def test_online_index_and_unique_constraint_are_built_and_removed():
    state = _state_with_table()
    with connection.schema_editor() as editor:
        editor.create_model(state.apps.get_model("common", "Probe"))
    try:
        index = AddIndexOnline("probe", models.Index(fields=["key"], name="probe_key_idx"))
        unique = AddUniqueConstraintOnline(
            "probe", models.UniqueConstraint(fields=["key"], name="probe_key_unique")
        )
        with_index = _apply(index, state)
        with_both = _apply(unique, with_index)
        with connection.cursor() as cursor:
            found = connection.introspection.get_constraints(cursor, "common_migration_probe")
        assert found["probe_key_idx"]["index"] is True
        assert found["probe_key_unique"]["unique"] is True

        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO common_migration_probe (key) VALUES ('a')")
            with pytest.raises(IntegrityError):
                cursor.execute("INSERT INTO common_migration_probe (key) VALUES ('a')")

        _unapply(unique, with_index, with_both)
        _unapply(index, state, with_index)
        with connection.cursor() as cursor:
            left = connection.introspection.get_constraints(cursor, "common_migration_probe")
        assert "probe_key_idx" not in left
        assert "probe_key_unique" not in left
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(state.apps.get_model("common", "Probe"))


def test_online_unique_constraint_takes_plain_columns_only():
    operation = AddUniqueConstraintOnline(
        "probe",
        models.UniqueConstraint(
            fields=["key"], condition=models.Q(key__gt=""), name="probe_key_partial"
        ),
    )
    state = _state_with_table()
    new_state = state.clone()
    operation.state_forwards("common", new_state)

    class PostgresEditor:
        # Stands in for the vendor check only: the refusal comes before any SQL.
        class connection:
            vendor = "postgresql"

    with pytest.raises(ValueError, match="columns only"):
        operation.database_forwards("common", PostgresEditor(), state, new_state)
