from celery import shared_task

from actions import scheduler, services


@shared_task(name="actions.tick", ignore_result=True)
def tick() -> int:
    """Beat calls this every 30 seconds; returns how many runs were started. Runs whose
    task message was lost (broker outage) are dispatched again."""
    started = len(scheduler.tick())
    services.redispatch_waiting_runs()
    return started


@shared_task(
    name="actions.execute_run",
    ignore_result=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=5,
)
def execute_run(run_id: int) -> None:
    # A retry carries on: mails already queued are found by their idempotency key.
    services.run_execute(run_id=run_id)
