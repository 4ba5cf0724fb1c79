import datetime

import pytest
from django.contrib.auth.models import Group

from actions.models import Action
from calmail.common.roles import POWER_USER
from tests.factories import SmtpConfigurationFactory, UserFactory

TODAY = datetime.date(2025, 3, 3)


@pytest.fixture
def team(db):
    """A team group (not a role) that owns templates."""
    return Group.objects.create(name="Labor Nord")


@pytest.fixture
def other_team(db):
    return Group.objects.create(name="Labor Süd")


@pytest.fixture
def teammate(team):
    """A power user in the team: manages the team's templates."""
    user = UserFactory(username="teammate", roles=[POWER_USER])
    user.groups.add(team)
    return user


def due_in(days: int, *, interval_months: int = 12) -> dict:
    """Instrument fields that make its next due date TODAY + days (12-month interval)."""
    due = TODAY + datetime.timedelta(days=days)
    return {
        "last_calibration": due.replace(year=due.year - 1),
        "calibration_interval_months": interval_months,
    }


def page_text(response) -> str:
    return response.content.decode()


def english(client):
    """Switch the client's session to English (requests default to German)."""
    client.post("/i18n/setlang/", {"language": "en"})
    return client


@pytest.fixture
def use_in_action(db):
    """Have an action send the template (it protects the template from deletion)."""

    def use(template, description: str):
        return Action.objects.create(
            description=description,
            time_of_day=datetime.time(7),
            start=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
            template=template,
            smtp_configuration=SmtpConfigurationFactory(),
            recipients=["ops@example.com"],
        )

    return use
