"""The Celery app: `celery -A calmail worker` and `celery -A calmail beat`."""

import os

from celery import Celery
from celery.signals import task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "calmail.settings")

app = Celery("calmail")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect(dispatch_uid="calmail_heal_database_connections")
def heal_database_connections(task=None, **kwargs):
    """Before each task, what Django does before each request: drop a connection that
    failed or is too old, and check the kept one once before its next query.

    Workers keep their database connection across tasks (CELERY_DB_REUSE_MAX), so
    Celery's Django fix-up closes it only every so many tasks. After a database restart
    every task would otherwise fail on the dead connection ("the connection is closed")
    until a worker is restarted; this check reconnects on the next task instead, at the
    cost of one cheap round trip per task. Eager tasks run inside the caller's
    transaction (tests), where the connection must stay as it is.
    """
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()
