"""The schedule part of the action form (issue 18): day of month, weekday and month as
toggle-button grids of real checkboxes, "Uhrzeit", a "Show next runs" button that does not
look disabled, and a recipient field that starts empty."""

import re

import pytest
from django.urls import reverse

from actions.models import Action
from tests.factories import MailTemplateFactory, SmtpConfigurationFactory


@pytest.fixture
def page(client_for, admin):
    SmtpConfigurationFactory(is_default=True)
    return client_for(admin).get(reverse("actions:create")).content.decode()


def test_days_weekdays_and_months_are_checkbox_grids(page):
    days = re.findall(r'<input type="checkbox" class="btn-check" name="days" value="([^"]+)"', page)
    weekdays = re.findall(r'class="btn-check" name="weekdays" value="(\d)"', page)
    months = re.findall(r'class="btn-check" name="months" value="(\d+)"', page)

    assert days == [str(day) for day in range(1, 32)] + ["last"]
    assert weekdays == [str(day) for day in range(7)]
    assert months == [str(month) for month in range(1, 13)]
    assert '<select name="days"' not in page
    assert ">Letzter</label>" in page
    assert page.count("data-toggle-controls") == 3


@pytest.mark.django_db
def test_time_field_is_called_time_of_day(client_for, admin):
    # German "Uhrzeit" (locale/de), not "Zeit".
    client = client_for(admin)
    client.post("/i18n/setlang/", {"language": "en"})

    page = client.get(reverse("actions:create")).content.decode()

    assert re.search(r'for="id_time_of_day"[^>]*>\s*Time of day', page)


def test_next_runs_button_is_a_clickable_outline_button(page):
    button = re.search(r'<input[^>]*name="preview"[^>]*>', page).group(0)

    assert 'class="btn btn-outline-primary"' in button
    assert "disabled" not in button


def test_recipients_start_empty(page):
    field = re.search(r'<input type="text" name="recipients"[^>]*>', page).group(0)

    assert "value=" not in field
    assert "[]" not in field.replace('data-choices="[]"', "")


@pytest.mark.django_db
def test_checked_toggles_are_stored_as_before_and_shown_again(client_for, admin):
    client = client_for(admin)
    data = {
        "description": "Quartal",
        "days": ["1", "last"],
        "weekdays": ["0", "4"],
        "months": ["1", "4", "7", "10"],
        "time_of_day": "07:00",
        "start": "2026-01-01T00:00",
        "recipients": "ops@example.com",
        "template": MailTemplateFactory().pk,
        "smtp_configuration": SmtpConfigurationFactory().pk,
        "published": "on",
    }

    client.post(reverse("actions:create"), data)
    action = Action.objects.get()
    edit = client.get(reverse("actions:update", args=[action.pk])).content.decode()

    assert (action.days, action.weekdays, action.months) == ([1, "last"], [0, 4], [1, 4, 7, 10])
    checked = re.findall(r'name="(days|weekdays|months)" value="([^"]+)"[^>]*\bchecked\b', edit)
    assert checked == [
        ("days", "1"),
        ("days", "last"),
        ("weekdays", "0"),
        ("weekdays", "4"),
        ("months", "1"),
        ("months", "4"),
        ("months", "7"),
        ("months", "10"),
    ]


@pytest.mark.django_db
def test_no_toggle_checked_means_any(client_for, admin):
    client = client_for(admin)
    data = {
        "description": "Täglich",
        "time_of_day": "07:00",
        "start": "2026-01-01T00:00",
        "recipients": "ops@example.com",
        "template": MailTemplateFactory().pk,
        "smtp_configuration": SmtpConfigurationFactory().pk,
    }

    client.post(reverse("actions:create"), data)

    action = Action.objects.get()
    assert (action.days, action.weekdays, action.months) == ([], [], [])
