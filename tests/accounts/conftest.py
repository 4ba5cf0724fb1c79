import pytest
from django.contrib.auth.models import Group

from calmail.common.roles import ADMINISTRATOR, POWER_USER, VIEWER
from tests.factories import SmtpConfigurationFactory, UserFactory
from tests.section_fixtures import media_root, other_team, team  # noqa: F401 (fixtures)


@pytest.fixture
def second_admin(db):
    return UserFactory(username="admin-two", roles=[ADMINISTRATOR])


@pytest.fixture
def member(team):  # noqa: F811 (the imported fixture)
    """A power user in the team, with a German profile."""
    user = UserFactory(username="paula", first_name="Paula", last_name="Peters", roles=[POWER_USER])
    user.groups.add(team)
    return user


@pytest.fixture
def default_smtp(db):
    return SmtpConfigurationFactory(
        name="Hauptserver", is_default=True, from_email="calmail@calserver.example"
    )


def role_names(user) -> set[str]:
    return set(
        user.groups.filter(name__in=[ADMINISTRATOR, POWER_USER, VIEWER]).values_list(
            "name", flat=True
        )
    )


def team_names(user) -> list[str]:
    return sorted(
        user.groups.exclude(name__in=[ADMINISTRATOR, POWER_USER, VIEWER]).values_list(
            "name", flat=True
        )
    )


def group(name: str) -> Group:
    return Group.objects.get(name=name)


def make_action(*, group, template=None):
    """An action of the group, stored directly (the actions app's services are not what
    these tests are about)."""
    import datetime as dt

    from django.utils import timezone

    from actions.models import Action
    from tests.factories import MailTemplateFactory, SmtpConfigurationFactory

    return Action.objects.create(
        description="Monatliche Erinnerung",
        time_of_day=dt.time(7),
        start=timezone.now(),
        group=group,
        template=template or MailTemplateFactory(),
        smtp_configuration=SmtpConfigurationFactory(),
        recipients=["ops@example.com"],
    )
