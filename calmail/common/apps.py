from pathlib import Path

from django.apps import AppConfig
from django.conf import settings
from django.utils.translation import gettext_lazy as _


class CommonConfig(AppConfig):
    name = "calmail.common"
    label = "common"
    verbose_name = _("calmail common")

    def ready(self):
        # kombu's filesystem transport (the embedded broker) needs its folders to exist
        # in every process that publishes or consumes, web included.
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
            if options.get(key):
                Path(options[key]).mkdir(parents=True, exist_ok=True)
