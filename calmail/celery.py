"""The Celery app: `celery -A calmail worker` and `celery -A calmail beat`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "calmail.settings")

app = Celery("calmail")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
