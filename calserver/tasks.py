"""Celery tasks of the connector: beat's check for a due sync, and the sync itself."""

import logging
from functools import partial

from celery import shared_task
from django.db import transaction

from calserver import services

logger = logging.getLogger(__name__)


@shared_task(name="calserver.sync_due", ignore_result=True)
def sync_due() -> int | None:
    """Beat calls this every few minutes; starts the scheduled sync when its interval
    has passed (and the connection is enabled). Returns the run's id."""
    run = services.sync_due_run()
    if run is None:
        return None
    transaction.on_commit(partial(dispatch_sync, run_id=run.pk))
    return run.pk


# Longer than the default task limit: a large installation pages through many records.
# Below the broker's visibility timeout (3600 s), or Redis would hand the run out twice.
@shared_task(name="calserver.sync_run", ignore_result=True, time_limit=3000, soft_time_limit=2900)
def sync_run(run_id: int) -> None:
    services.sync_run_execute(run_id=run_id)


def dispatch_sync(*, run_id: int) -> None:
    """Have a worker run the sync. Never raises: with the broker down the run is left
    running and taken back as interrupted after services.STALE_RUN."""
    try:
        sync_run.apply_async(
            args=[run_id],
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        )
    except Exception as exc:
        logger.warning(
            "Could not publish calServer sync run #%s (%s).", run_id, exc.__class__.__name__
        )
