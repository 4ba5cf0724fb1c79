"""Which columns each user sees in each list (the column chooser of every list page)."""

from collections.abc import Sequence

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction

from calmail.common.models import ColumnChoice


def saved_columns(*, user: User | AnonymousUser, table_key: str) -> list[str] | None:
    """The columns the user chose for the table, or None if they never chose."""
    if not isinstance(user, User) or not user.is_authenticated:
        return None
    columns = (
        ColumnChoice.objects.filter(user=user, table_key=table_key)
        .values_list("columns", flat=True)
        .first()
    )
    return list(columns) if isinstance(columns, list) else None


@transaction.atomic
def column_choice_save(*, user: User, table_key: str, columns: Sequence[str]) -> ColumnChoice:
    """Remember the user's columns for the table (names already checked by the caller)."""
    choice = ColumnChoice.objects.select_for_update().filter(
        user=user, table_key=table_key
    ).first() or ColumnChoice(user=user, table_key=table_key)
    choice.columns = list(columns)
    choice.full_clean()
    choice.save()
    return choice


def column_choice_reset(*, user: User, table_key: str) -> None:
    """Back to the table's default columns."""
    ColumnChoice.objects.filter(user=user, table_key=table_key).delete()
