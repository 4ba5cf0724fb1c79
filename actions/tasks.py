"""Celery tasks of actions. The scheduler and the run services return the runs to
execute; only this layer publishes tasks (so nothing below imports it)."""

import logging
from functools import partial

from celery import shared_task
from django.db import transaction

from actions import runs, scheduler

logger = logging.getLogger(__name__)


@shared_task(name="actions.tick", ignore_result=True)
def tick() -> int:
    """Beat calls this every 30 seconds; returns how many runs were started. Runs whose
    task message was lost (broker outage) are dispatched again."""
    started = scheduler.tick()
    for run_id in [*started, *runs.waiting_run_ids()]:
        transaction.on_commit(partial(dispatch_run, run_id=run_id))
    return len(started)


@shared_task(
    name="actions.execute_run",
    ignore_result=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=5,
)
def execute_run(run_id: int) -> None:
    # A retry carries on: mails already queued are found by their idempotency key.
    runs.run_execute(run_id=run_id)


def dispatch_run(*, run_id: int) -> None:
    """Have a worker execute the run. Never raises: with the broker down the run stays
    pending, and the tick dispatches it again (actions.runs.waiting_run_ids)."""
    try:
        execute_run.apply_async(
            args=[run_id],
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        )
    except Exception as exc:
        logger.warning(
            "Could not publish run #%s (%s); the next tick dispatches it again.",
            run_id,
            exc.__class__.__name__,
        )
