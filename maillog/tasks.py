import logging

from celery import shared_task

from maillog import retention

logger = logging.getLogger(__name__)


@shared_task(name="maillog.purge", ignore_result=True)
def purge() -> dict:
    """Daily (Celery beat): delete log entries and outbox mail past their retention."""
    result = retention.purge()
    logger.info(
        "Retention: %s log entries (%s) and %s outbox mails deleted",
        sum(result.log_entries.values()),
        result.log_entries,
        result.outbox_messages,
    )
    return {"log_entries": result.log_entries, "outbox_messages": result.outbox_messages}
