import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group

from actions.models import Action
from tests.factories import MailTemplateFactory, SmtpConfigurationFactory

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args, fold=0):
    return dt.datetime(*args, tzinfo=BERLIN, fold=fold)


@pytest.fixture
def team(db):
    return Group.objects.create(name="Kalibrierlabor Jena")


@pytest.fixture
def make_action(db, team):
    """Store an action directly (bypassing the services), next_due_at as given."""

    def make(**values):
        defaults = {
            "description": "Monatliche Erinnerung",
            "time_of_day": dt.time(7),
            "start": berlin(2026, 1, 1),
            "group": team,
            "template": values.pop("template", None) or MailTemplateFactory(),
            "smtp_configuration": values.pop("smtp_configuration", None)
            or SmtpConfigurationFactory(),
            "recipients": ["ops@example.com"],
        }
        defaults.update(values)
        return Action.objects.create(**defaults)

    return make
