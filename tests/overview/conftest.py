import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from actions.models import Action
from tests.factories import MailTemplateFactory, SmtpConfigurationFactory
from tests.section_fixtures import english, media_root, other_team, team  # noqa: F401 (fixtures)

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BERLIN)


@pytest.fixture
def make_action(db, team):  # noqa: F811 (the fixture imported above)
    """An action stored directly (bypassing the services), next_due_at as given."""

    def make(**values):
        defaults = {
            "description": "Monatliche Erinnerung",
            "time_of_day": dt.time(7),
            "start": berlin(2026, 1, 1),
            "group": team,
            "template": MailTemplateFactory(),
            "smtp_configuration": SmtpConfigurationFactory(),
            "recipients": ["ops@example.com"],
        }
        defaults.update(values)
        return Action.objects.create(**defaults)

    return make
