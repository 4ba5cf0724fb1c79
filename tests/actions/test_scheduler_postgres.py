"""Two beat processes at once: exactly one run per (action, slot)."""

import threading

import pytest
from django.db import connection, connections

from actions.models import Action, ActionRun
from actions.scheduler import tick
from tests.actions.conftest import berlin

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SKIP LOCKED races need PostgreSQL"
)

ACTIONS = 40
DAYS = 15


# Serialized rollback: the flush after this test must leave the migrated roles and
# permissions for the live-server (browser) tests that run after it.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_ticks_make_exactly_one_run_per_slot(make_action):
    template = make_action().template
    Action.objects.all().delete()
    first = make_action(template=template, next_due_at=berlin(2026, 6, 1, 7))
    for number in range(1, ACTIONS):
        make_action(
            template=template,
            smtp_configuration=first.smtp_configuration,
            description=f"Aktion {number}",
            next_due_at=berlin(2026, 6, 1, 7),
        )
    barrier = threading.Barrier(2)
    made: list[list[int]] = [[], []]
    errors: list[BaseException] = []

    def beat(index: int) -> None:
        try:
            for day in range(DAYS):
                barrier.wait(timeout=30)
                made[index] += tick(now=berlin(2026, 6, 1 + day, 7, 0, 5))
        except BaseException as error:  # reported in the main thread
            errors.append(error)
            barrier.abort()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=beat, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    slots = list(ActionRun.objects.values_list("action_id", "slot"))
    assert len(slots) == ACTIONS * DAYS
    assert len(set(slots)) == ACTIONS * DAYS
    assert sorted(made[0] + made[1]) == sorted(ActionRun.objects.values_list("pk", flat=True))
    # Both beats did part of the work (the race was real), neither a duplicate.
    assert made[0] and made[1]
