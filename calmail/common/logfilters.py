"""Logging filters named in settings.LOGGING."""

import logging


class NoClientErrorTraceback(logging.Filter):
    """django.request logs a 403 (PermissionDenied) or 404 with the exception's traceback:
    noise for a refusal that is working as designed. Keep the line, drop the traceback;
    5xx keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is not None and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
