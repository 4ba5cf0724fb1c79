import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from actions.models import Action, ActionRun, Trigger
from tests.actions.conftest import berlin
from tests.factories import (
    CustomerFactory,
    MailTemplateFactory,
    SmtpConfigurationFactory,
    UserFactory,
)


def url_for(name, *args):
    return reverse(f"actions:{name}", args=args)


def english(client):
    client.post("/i18n/setlang/", {"language": "en"})
    return client


@pytest.fixture
def teammate(power_user, team):
    power_user.groups.add(team)
    return power_user


def form_data(team, **overrides):
    template = overrides.pop("template", None)
    data = {
        "description": "Erster Montag",
        "days": ["1", "2", "3", "4", "5", "6", "7"],
        "weekdays": ["0"],
        "months": [],
        "time_of_day": "07:00",
        "start": "2026-01-01T00:00",
        "end": "",
        "recipients": "ops@example.com, labor@example.com",
        "template": template or MailTemplateFactory(owner_group=team).pk,
        "smtp_configuration": SmtpConfigurationFactory().pk,
        "group": team.pk if team else "",
        "published": "on",
    }
    data.update(overrides)
    return data


def test_list_shows_every_column(client_for, admin, make_action):
    make_action(days=[1, "last"], weekdays=[0], months=[7], next_due_at=berlin(2026, 7, 1, 7))
    client = english(client_for(admin))

    response = client.get(url_for("list"))

    # Every column exists; the page hides some until the user chooses (column chooser).
    headers = [c.header for c in response.context["table"].columns.iterall()]
    assert [str(h) for h in headers] == [
        "Description", "Day of month", "Weekday", "Month", "Start", "End", "Group",
        "Published", "Send without attachments", "Sent", "Template", "SMTP configuration",
        "Next run", "Actions",
    ]  # fmt: skip
    content = response.content.decode()
    assert "1, last" in content
    assert "Monday" in content
    assert "July" in content


def test_list_only_shows_own_groups_actions(client_for, teammate, make_action):
    from django.contrib.auth.models import Group

    make_action(description="Unsere")
    make_action(description="Fremde", group=Group.objects.create(name="Andere"))

    response = client_for(teammate).get(url_for("list"))

    assert [r.record.description for r in response.context["table"].page.object_list] == ["Unsere"]


def test_outsider_gets_403_and_other_group_404(client_for, outsider, teammate, make_action):
    from django.contrib.auth.models import Group

    foreign = make_action(group=Group.objects.create(name="Andere"))

    assert client_for(outsider).get(url_for("list")).status_code == 403
    response = client_for(teammate).get(url_for("update", foreign.pk))
    assert response.status_code == 404
    assert client_for(teammate).get(url_for("runs", foreign.pk)).status_code == 404


def test_viewer_sees_list_but_cannot_edit(client_for, viewer, team, make_action):
    viewer.groups.add(team)
    action = make_action()
    client = client_for(viewer)

    listed = client.get(url_for("list"))
    edit = client.get(url_for("update", action.pk))

    assert [r.record.pk for r in listed.context["table"].page.object_list] == [action.pk]
    assert edit.status_code == 403


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"description": "mon"}, ["Monatlich"]),
        ({"day": "last"}, ["Jeden Tag", "Monatlich"]),
        ({"day": "1"}, ["Jeden Tag", "Quartal"]),
        ({"weekday": "4"}, ["Jeden Tag", "Monatlich", "Quartal"]),
        ({"month": "1"}, ["Jeden Tag", "Monatlich", "Quartal"]),
        ({"month": "2"}, ["Jeden Tag", "Monatlich"]),
        ({"published": "no"}, ["Quartal"]),
        ({"send_without_attachments": "yes"}, ["Monatlich"]),
    ],
)
def test_list_filters_per_column(client_for, admin, make_action, query, expected):
    make_action(description="Jeden Tag")
    make_action(description="Monatlich", days=["last"], send_without_attachments=True)
    make_action(
        description="Quartal", days=[1, 11], weekdays=[4], months=[1, 4, 7, 10], published=False
    )

    response = client_for(admin).get(url_for("list"), query)

    assert [r.record.description for r in response.context["table"].page.object_list] == expected


def test_list_sorts_by_next_run(client_for, admin, make_action):
    make_action(description="B", next_due_at=berlin(2026, 7, 2))
    make_action(description="A", next_due_at=berlin(2026, 7, 3))
    make_action(description="C", next_due_at=berlin(2026, 7, 1))

    response = client_for(admin).get(url_for("list"), {"sort": "next_due_at"})

    assert [r.record.description for r in response.context["table"].page.object_list] == [
        "C",
        "B",
        "A",
    ]


def test_list_query_count_does_not_grow_with_rows(
    client_for, admin, make_action, django_assert_num_queries
):
    client = client_for(admin)
    template, configuration = MailTemplateFactory(), SmtpConfigurationFactory()
    make_action(template=template, smtp_configuration=configuration)
    client.get(url_for("list"))
    with CaptureQueriesContext(connection) as one_row:
        client.get(url_for("list"))
    make_action(template=MailTemplateFactory(), smtp_configuration=configuration)
    make_action(template=template, smtp_configuration=SmtpConfigurationFactory())

    with django_assert_num_queries(len(one_row.captured_queries)):
        response = client.get(url_for("list"))

    assert len(response.context["table"].page.object_list) == 3


def test_create_stores_action_with_next_run(client_for, teammate, team):
    client = english(client_for(teammate))

    response = client.post(url_for("create"), form_data(team))

    action = Action.objects.get()
    assert response.status_code == 302
    assert (action.days, action.weekdays, action.group) == ([1, 2, 3, 4, 5, 6, 7], [0], team)
    assert action.recipients == ["ops@example.com", "labor@example.com"]
    assert action.next_due_at is not None
    assert action.next_due_at.astimezone(berlin(2026, 1, 1).tzinfo).weekday() == 0
    assert action.next_due_at.astimezone(berlin(2026, 1, 1).tzinfo).day <= 7


def test_create_refuses_rule_that_never_fires(client_for, teammate, team):
    client = english(client_for(teammate))

    response = client.post(
        url_for("create"), form_data(team, days=["30", "31"], weekdays=[], months=["2"])
    )

    assert response.status_code == 200
    assert "This rule can never fire" in response.content.decode()
    assert Action.objects.count() == 0


def test_create_refuses_unknown_recipient(client_for, teammate, team):
    client = english(client_for(teammate))

    response = client.post(url_for("create"), form_data(team, recipients="customer:99999"))

    assert response.status_code == 200
    assert Action.objects.count() == 0
    assert response.context["form"].errors["recipients"]


def test_form_preview_button_lists_next_ten_runs(client_for, teammate, team):
    client = english(client_for(teammate))

    response = client.post(url_for("create"), {**form_data(team), "preview": "1"})

    assert Action.objects.count() == 0
    assert len(response.context["slots"]) == 10
    assert "combine with AND" in response.content.decode()


def test_next_runs_endpoint_answers_json(client_for, teammate):
    client = client_for(teammate)

    response = client.get(
        url_for("next_runs"),
        {"days": ["31"], "months": ["4", "6"], "start": "2026-01-01T00:00", "time_of_day": "07:00"},
    )
    fine = client.get(
        url_for("next_runs"),
        {"days": ["last"], "start": "2026-01-01T00:00", "end": "2099-01-01T00:00"},
    )

    assert response.json()["runs"] == []
    assert "never fire" in response.json()["message"] or "nie" in response.json()["message"]
    assert len(fine.json()["runs"]) == 10


def test_run_now_creates_manual_run(
    client_for, teammate, make_action, django_capture_on_commit_callbacks
):
    action = make_action()

    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(teammate).post(url_for("run_now", action.pk))

    run = ActionRun.objects.get()
    assert response.url == url_for("runs", action.pk)
    assert (run.action, run.trigger) == (action, Trigger.MANUAL)
    assert len(callbacks) == 1


def test_toggle_deactivates_and_reactivates_without_catch_up(client_for, teammate, make_action):
    action = make_action(next_due_at=berlin(2020, 1, 1, 7))
    client = client_for(teammate)

    client.post(url_for("toggle", action.pk))
    action.refresh_from_db()
    assert (action.published, action.next_due_at) == (False, None)

    client.post(url_for("toggle", action.pk))
    action.refresh_from_db()
    assert action.published is True
    assert action.next_due_at > dt.datetime.now(dt.UTC)


def test_duplicate_and_delete(client_for, teammate, make_action):
    action = make_action()
    client = client_for(teammate)

    client.post(url_for("duplicate", action.pk))
    copy = Action.objects.exclude(pk=action.pk).get()
    client.post(url_for("delete", action.pk))

    assert list(Action.objects.all()) == [copy]
    assert copy.published is False


def test_run_history_lists_runs_with_reasons(client_for, teammate, make_action):
    action = make_action()
    ActionRun.objects.create(
        action=action,
        slot=berlin(2026, 6, 1, 7),
        trigger=Trigger.SCHEDULE,
        status="missed",
    )
    ActionRun.objects.create(
        action=action,
        slot=berlin(2026, 6, 2, 7),
        trigger=Trigger.CATCH_UP,
        status="done",
        queued_count=2,
        skipped_count=1,
        skipped=[{"recipient": "leer@kunde.example", "reason": "no attachment"}],
    )
    client = english(client_for(teammate))

    response = client.get(url_for("runs", action.pk))

    rows = [r.record for r in response.context["table"].page.object_list]
    assert [(r.trigger, r.status) for r in rows] == [("catch_up", "done"), ("schedule", "missed")]
    assert "leer@kunde.example: no attachment" in response.content.decode()


def test_navigation_lists_actions_first(client_for, admin):
    response = client_for(admin).get(url_for("list"))

    # After the overview, the home page.
    assert [s["key"] for s in response.context["nav_sections"][:2]] == ["overview", "actions"]


def test_other_teammate_cannot_run_foreign_action(client_for, make_action):
    from django.contrib.auth.models import Group

    stranger = UserFactory(username="stranger", roles=["Power user"])
    stranger.groups.add(Group.objects.create(name="Andere"))
    action = make_action()

    response = client_for(stranger).post(url_for("run_now", action.pk))

    assert response.status_code == 404
    assert ActionRun.objects.count() == 0


def test_edit_page_shows_next_runs_of_stored_rule(client_for, teammate, make_action):
    action = make_action(days=["last"], months=[2], start=berlin(2026, 1, 1))
    client = english(client_for(teammate))

    with time_machine.travel(berlin(2026, 6, 1, 12), tick=False):
        response = client.get(url_for("update", action.pk))

    slots = response.context["slots"]
    assert slots[:2] == ["Sunday, Feb. 28, 2027, 7 a.m.", "Tuesday, Feb. 29, 2028, 7 a.m."]
    assert len(slots) == 10
    assert response.context["form"]["recipients"].value() == "ops@example.com"


def test_edit_page_shows_stored_recipients_in_the_picker(client_for, teammate, make_action):
    customer = CustomerFactory(number="4711", name="Muster GmbH")
    action = make_action(recipients=["ops@example.com", f"customer:{customer.pk}"])
    client = english(client_for(teammate))

    response = client.get(url_for("update", action.pk))

    bound = response.context["form"]["recipients"]
    assert bound.value() == f"ops@example.com, customer:{customer.pk}"
    assert [(c["token"], c["label"]) for c in bound.field.widget.choices_for(bound.value())] == [
        ("address:ops@example.com", "ops@example.com"),
        (f"customer:{customer.pk}", "4711 · Muster GmbH"),
    ]
    text = response.content.decode()
    assert f'data-recipient-picker="{reverse("inventory:recipient_search")}"' in text
    assert '<script src="/static/js/recipient-picker.js" defer></script>' in text
    assert "data-single" not in text


def test_run_history_query_count_does_not_grow_with_rows(
    client_for, teammate, make_action, django_assert_num_queries
):
    action = make_action()
    client = client_for(teammate)
    ActionRun.objects.create(action=action, slot=berlin(2026, 6, 1, 7), trigger=Trigger.SCHEDULE)
    client.get(url_for("runs", action.pk))
    with CaptureQueriesContext(connection) as one_row:
        client.get(url_for("runs", action.pk))
    for day in (2, 3):
        ActionRun.objects.create(
            action=action, slot=berlin(2026, 6, day, 7), trigger=Trigger.SCHEDULE
        )

    with django_assert_num_queries(len(one_row.captured_queries)):
        response = client.get(url_for("runs", action.pk))

    assert len(response.context["table"].page.object_list) == 3


def test_next_runs_endpoint_refuses_outsider(client_for, outsider):
    response = client_for(outsider).get(url_for("next_runs"), {"start": "2026-01-01T00:00"})

    # The site's 403 page (templates/403.html), not the JSON with the runs.
    assert (response.status_code, response["Content-Type"]) == (403, "text/html; charset=utf-8")
    assert '"runs"' not in response.content.decode()


# --- teams: actions without a team, users without one ---------------------------------------

NO_TEAM = "You are not in any team yet — ask an administrator to add you to one."


def test_action_without_team_is_seen_and_managed_by_administrators_only(
    client_for, admin, teammate, make_action
):
    own = make_action(description="Unsere")
    hidden = make_action(description="Nur Admins", group=None)

    admin_list = client_for(admin).get(url_for("list"))
    admin_edit = client_for(admin).get(url_for("update", hidden.pk))
    team_list = client_for(teammate).get(url_for("list"))
    team_edit = client_for(teammate).get(url_for("update", hidden.pk))
    team_run = client_for(teammate).post(url_for("run_now", hidden.pk))

    assert [r.record.description for r in admin_list.context["table"].page.object_list] == [
        "Nur Admins",
        "Unsere",
    ]
    assert admin_edit.status_code == 200
    assert "Nur Admins" in admin_edit.content.decode()
    assert [r.record.pk for r in team_list.context["table"].page.object_list] == [own.pk]
    assert "Nur Admins" not in team_list.content.decode()
    assert (team_edit.status_code, team_run.status_code) == (404, 404)
    assert ActionRun.objects.count() == 0


def test_admin_saves_action_without_team(client_for, admin, team):
    client = english(client_for(admin))

    page = client.get(url_for("create"))
    response = client.post(url_for("create"), form_data(team, group=""))

    assert "Empty: only administrators see and manage the action." in page.content.decode()
    assert response.status_code == 302
    action = Action.objects.get()
    assert (action.description, action.group) == ("Erster Montag", None)


def test_admin_runs_action_without_team(
    client_for, admin, make_action, django_capture_on_commit_callbacks
):
    action = make_action(group=None)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(admin).post(url_for("run_now", action.pk))

    assert response.url == url_for("runs", action.pk)
    assert list(ActionRun.objects.values_list("action", "trigger")) == [(action.pk, Trigger.MANUAL)]
    assert len(callbacks) == 1


def test_create_form_preselects_the_single_team(client_for, teammate, team):
    response = english(client_for(teammate)).get(url_for("create"))

    assert response.context["form"]["group"].value() == team.pk
    assert f'<option value="{team.pk}" selected>Kalibrierlabor Jena</option>' in (
        response.content.decode()
    )
    assert 'data-testid="team-alert"' not in response.content.decode()


def test_create_form_with_two_teams_preselects_none(client_for, teammate, team):
    from django.contrib.auth.models import Group

    second = Group.objects.create(name="Außenstelle")
    teammate.groups.add(second)

    response = english(client_for(teammate)).get(url_for("create"))

    html = response.content.decode()
    assert response.context["form"]["group"].value() is None
    assert '<option value="" selected>' in html
    assert f'<option value="{team.pk}">Kalibrierlabor Jena</option>' in html
    assert f'<option value="{second.pk}">Außenstelle</option>' in html


def test_edit_form_keeps_the_stored_team(client_for, admin, team, make_action):
    from django.contrib.auth.models import Group

    admin.groups.add(Group.objects.create(name="Admins' Team"))
    action = make_action(group=None)

    response = client_for(admin).get(url_for("update", action.pk))

    assert response.context["form"]["group"].value() is None


def test_power_user_in_no_team_sees_why_and_keeps_the_input(client_for, power_user):
    client = english(client_for(power_user))
    shared_template = MailTemplateFactory(name="Gemeinsam")

    page = client.get(url_for("create"))
    response = client.post(
        url_for("create"),
        form_data(None, description="Mein Entwurf", group="", template=shared_template.pk),
    )

    html = response.content.decode()
    assert NO_TEAM in page.content.decode()
    assert 'name="description"' in page.content.decode()
    assert response.status_code == 200
    assert Action.objects.count() == 0
    assert response.context["form"].errors == {"group": [NO_TEAM]}
    assert html.index('data-testid="team-alert"') < html.index('name="description"')
    assert 'value="Mein Entwurf"' in html
    assert "ops@example.com, labor@example.com" in html


def test_power_user_cannot_leave_the_team_empty(client_for, teammate, team):
    response = english(client_for(teammate)).post(url_for("create"), form_data(team, group=""))

    assert Action.objects.count() == 0
    assert response.context["form"].errors == {"group": ["This field is required."]}
    assert 'data-testid="team-alert"' not in response.content.decode()


def test_admin_with_no_team_anywhere_is_shown_where_to_create_one(client_for, admin):
    from django.contrib.auth.models import Group

    from calmail.common.roles import ROLE_NAMES

    assert Group.objects.exclude(name__in=ROLE_NAMES).exists() is False

    response = english(client_for(admin)).get(url_for("create"))

    html = response.content.decode()
    assert f'<a href="{reverse("accounts:team_create")}">Create a team</a>' in html
    assert "There is no team yet." in html
    assert 'data-testid="team-alert"' not in html


def test_admin_with_a_team_somewhere_gets_no_link_to_create_one(client_for, admin, team):
    response = english(client_for(admin)).get(url_for("create"))

    assert reverse("accounts:team_create") not in response.content.decode()
