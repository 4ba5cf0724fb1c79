"""Celery tasks of the outbox: thin nudges; the rows in the database are the truth.

A lost task only delays mail: the sweeper (Celery beat, every minute) finds due rows and
dispatches again. Tasks take ids, never model instances.
"""

import logging
import math
import os
import socket

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from mailbox import delivery, retention
from mailbox.dispatch import dispatch_delivery

logger = logging.getLogger(__name__)

# A rate-limited configuration is nudged again when its window frees, but never later
# than this: the sweeper comes every minute anyway, and a short countdown stays far below
# the broker's visibility timeout.
MAX_RATE_LIMIT_COUNTDOWN = 60
# A retry due within this many seconds gets its own nudge (the first backoffs); later
# ones are found by the sweeper.
MAX_RETRY_COUNTDOWN = 600


def _worker_id(task) -> str:
    hostname = getattr(task.request, "hostname", None) or socket.gethostname()
    return f"{hostname}:{os.getpid()}"


@shared_task(
    name="mailbox.deliver_configuration",
    bind=True,
    ignore_result=True,
    # The database went away mid-run (restart, failover): try again within seconds, on a
    # fresh connection (calmail.celery.heal_database_connections), rather than leave the
    # queued mail to the next sweep. Mails this run had claimed come back after their lease.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=1,
    retry_backoff_max=5,
    retry_jitter=False,
    max_retries=120,
)
def deliver_configuration(self, configuration_id: int) -> dict:
    """Deliver the due mail of one SMTP configuration (see mailbox.delivery.deliver_due).

    Hands over to a new task when due mail is left after this run's time budget, and
    starts one parallel run when a backlog meets a free connection slot, so a large
    outbox drains over several workers. Each follow-up needs progress (or a free slot),
    so the chain is bounded by the mail there is to send.
    """
    stats = delivery.deliver_due(
        configuration_id=configuration_id,
        worker_id=_worker_id(self),
        on_backlog=lambda: dispatch_delivery(configuration_id=configuration_id),
    )
    if stats.should_continue:
        dispatch_delivery(configuration_id=configuration_id)
    elif stats.rate_limited_until is not None and not self.request.is_eager:
        # (Run eagerly, without a broker, a countdown cannot wait: the sweeper takes over.)
        wait = (stats.rate_limited_until - timezone.now()).total_seconds()
        _nudge_later(
            configuration_id, countdown=min(MAX_RATE_LIMIT_COUNTDOWN, max(1, math.ceil(wait)))
        )
    # After a run that tried mail (cheap next to sending it): deferred mail of this or an
    # earlier run gets a nudge for when its retry is due.
    if stats.attempted and not self.request.is_eager:
        _nudge_for_retry(configuration_id)
    return stats.as_dict()


def _nudge_for_retry(configuration_id: int) -> None:
    """A mail deferred with a short backoff (a 451 with 5 s) is tried again when it is
    due, not at the next sweep. Retries further away than MAX_RETRY_COUNTDOWN are left to
    the sweeper: a task held that long by a worker only waits out broker outages badly."""
    due = delivery.next_retry_at(configuration_id)
    if due is None:
        return
    wait = (due - timezone.now()).total_seconds()
    if wait <= MAX_RETRY_COUNTDOWN:
        _nudge_later(configuration_id, countdown=max(1, math.ceil(wait)))


def _nudge_later(configuration_id: int, *, countdown: int) -> None:
    try:
        deliver_configuration.apply_async(
            args=[configuration_id],
            countdown=countdown,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        )
    except Exception as exc:
        # The sweeper nudges within a minute anyway.
        logger.warning(
            "Could not schedule delivery for SMTP configuration #%s (%s).",
            configuration_id,
            exc.__class__.__name__,
        )


@shared_task(name="mailbox.sweep", ignore_result=True)
def sweep() -> dict:
    """Every minute (Celery beat): take back mail of dead workers, queue scheduled mail
    whose time came, and dispatch delivery for every configuration with due mail."""
    return delivery.sweep().as_dict()


@shared_task(name="mailbox.purge", ignore_result=True)
def purge() -> dict:
    """Daily (Celery beat): delete the content of finished mail past
    CALMAIL_OUTBOX_RETENTION_DAYS and whole records past CALMAIL_RECORD_RETENTION_YEARS;
    returns how many of each."""
    result = retention.purge_outbox()
    logger.info(
        "Retention: content of %s outbox mails deleted, %s records deleted",
        result.contents,
        result.records,
    )
    return result.as_dict()
