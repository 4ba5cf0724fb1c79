import logging

from celery import shared_task

from maillog import retention

logger = logging.getLogger(__name__)


@shared_task(name="maillog.purge", ignore_result=True)
def purge() -> dict:
    """Daily (Celery beat): delete log entries past their retention; returns the deleted
    counts per rule. (Outbox mail has its own task, mailbox.purge.)"""
    result = retention.purge_log()
    logger.info("Retention: %s log entries deleted (%s)", sum(result.values()), result)
    return result
