"""Publishing the outbox's delivery task, by its name.

enqueue() and resend (mailbox.services) and the sweeper (mailbox.delivery) nudge a
worker after commit; the task itself (mailbox.tasks) runs the engine. Publishing by name
keeps the layers apart: writes and the engine never import the task layer that calls
them, so there is no delivery → services → tasks → delivery loop. Where the task is
registered in this process (a worker, or a test that runs tasks eagerly), Celery calls
it through its registration (honouring task_always_eager); elsewhere, as in a web
process, it publishes the message by name.
"""

import logging

from celery import signature

logger = logging.getLogger(__name__)

DELIVER_CONFIGURATION = "mailbox.deliver_configuration"


def dispatch_delivery(*, configuration_id: int) -> None:
    """Nudge a worker to deliver due mail of a configuration. Never raises: if the broker is
    down, the sweeper finds the rows within a minute (the database is the truth)."""
    try:
        signature(DELIVER_CONFIGURATION, args=[configuration_id]).apply_async(
            retry=True,
            retry_policy={
                "max_retries": 2,
                "interval_start": 0,
                "interval_step": 0.2,
                "interval_max": 0.5,
            },
        )
    except Exception as exc:
        logger.warning(
            "Could not publish delivery task for SMTP configuration #%s (%s); the sweeper will pick the mail up.",
            configuration_id,
            exc.__class__.__name__,
        )
