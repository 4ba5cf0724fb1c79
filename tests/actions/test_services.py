"""actions.services: who may leave an action without a team."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from actions import services
from actions.models import Action
from actions.services import copy_description
from tests.actions.conftest import berlin
from tests.factories import MailTemplateFactory, SmtpConfigurationFactory

pytestmark = pytest.mark.django_db


def values(**overrides) -> dict:
    data = {
        "description": "Ohne Team",
        "days": ["1"],
        "weekdays": [],
        "months": [],
        "time_of_day": dt.time(7),
        "start": berlin(2026, 1, 1),
        "end": None,
        "recipients": ["ops@example.com"],
        "template": MailTemplateFactory(),
        "smtp_configuration": SmtpConfigurationFactory(),
        "group": None,
        "published": True,
        "send_without_attachments": False,
    }
    data.update(overrides)
    return data


def test_action_create_without_team_by_administrator(admin):
    action = services.action_create(values=values(), user=admin)

    assert Action.objects.get() == action
    assert action.group is None


@pytest.mark.parametrize("role", ["power_user", "viewer"])
def test_action_create_without_team_refused_for_non_administrators(request, role):
    user = request.getfixturevalue(role)

    with pytest.raises(ValidationError) as exc:
        services.action_create(values=values(), user=user)

    assert exc.value.message_dict == {
        "group": ["Choose a team: only administrators may leave it empty."]
    }
    assert Action.objects.exists() is False


def test_action_duplicate_of_action_without_team_stays_without_team(admin):
    action = services.action_create(values=values(), user=admin)

    copy = services.action_duplicate(action=action)

    assert (copy.group, copy.published) == (None, False)


def test_a_copy_is_named_in_the_readers_language():
    with translation.override("de"):
        assert copy_description("Kalibrier-Erinnerung") == "Kalibrier-Erinnerung (Kopie)"
    with translation.override("en"):
        assert copy_description("Calibration reminder") == "Calibration reminder (copy)"
