import pytest
from django.contrib.auth.models import Group

from calmail.common.roles import POWER_USER
from tests.factories import UserFactory


@pytest.fixture
def team(db):
    """A team group (not a role) that can own distribution lists."""
    return Group.objects.create(name="Labor Nord")


@pytest.fixture
def teammate(team):
    """A power user in the team."""
    user = UserFactory(username="teammate", roles=[POWER_USER])
    user.groups.add(team)
    return user


def english(client):
    client.post("/i18n/setlang/", {"language": "en"})
    return client


def page_text(response) -> str:
    return response.content.decode()


def rows(response) -> list:
    return [row.record for row in response.context["table"].page.object_list]
