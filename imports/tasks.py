from celery import shared_task

from imports import services


@shared_task(name="imports.analyse", ignore_result=True)
def analyse(run_id: int) -> None:
    """The dry run of an upload (rows to create, update, leave, reject)."""
    services.run_analyse(run_id=run_id)


@shared_task(name="imports.apply", ignore_result=True)
def apply(run_id: int) -> None:
    """The confirmed import of an upload."""
    services.run_apply(run_id=run_id)
