"""The overview page: who sees it, what it links to, its chart, its queries."""

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from actions.models import Action, ActionRun
from mailbox.models import OutboxMessage, Status
from tests.factories import (
    DeliveryAttemptFactory,
    MailTemplateFactory,
    OutboxMessageFactory,
    SmtpConfigurationFactory,
)
from tests.overview.conftest import berlin

NOW = dt.datetime(2026, 6, 10, 10, 30, tzinfo=dt.UTC)
URL = "/overview/"


def mail(created_at, **values) -> OutboxMessage:
    message = OutboxMessageFactory(**values)
    OutboxMessage.objects.filter(pk=message.pk).update(created_at=created_at)
    return message


def figure_link(html: str, status: str, column: int) -> tuple[str, int]:
    match = re.search(
        rf'<a href="([^"]+)"[^>]*data-testid="figure-{status}-{column}">(\d+)</a>', html
    )
    assert match, f"no figure for {status} in column {column}"
    return match.group(1).replace("&amp;", "&"), int(match.group(2))


@pytest.mark.django_db
def test_overview_anonymous_is_sent_to_login(client):
    response = client.get(URL)

    assert (response.status_code, response["Location"]) == (302, f"/accounts/login/?next={URL}")


@pytest.mark.django_db
def test_overview_user_without_role_gets_403_page(client_for, outsider, english):
    response = client_for(outsider).get(URL)

    assert response.status_code == 403
    assert "Access denied" in response.content.decode()


@pytest.mark.django_db
def test_login_lands_on_the_overview(client, admin):
    response = client.post(
        reverse("login"),
        {"username": admin.username, "password": "correct horse battery staple"},
        follow=True,
    )

    assert response.redirect_chain == [("/", 302), (URL, 302)]
    assert response.templates[0].name == "overview/index.html"


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["viewer", "power_user"])
def test_overview_team_user_sees_only_their_teams_figures(
    request, client_for, role, team, other_team, english
):
    user = request.getfixturevalue(role)
    user.groups.add(team)
    today = berlin(2026, 6, 10, 9)
    for owner, count in ((team, 2), (other_team, 5)):
        for _ in range(count):
            mail(today, status=Status.FAILED, owner_group=owner)
    mail(today, status=Status.SENT, sent_at=today, owner_group=other_team)

    with time_machine.travel(NOW, tick=False):
        response = client_for(user).get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert figure_link(html, "failed", 1)[1] == 2
    assert figure_link(html, "sent", 1)[1] == 0
    assert "2 failed mails in the last 30 days" in html


@pytest.mark.django_db
def test_overview_admin_sees_every_teams_figures(client_for, admin, team, other_team):
    today = berlin(2026, 6, 10, 9)
    for owner in (team, other_team, None):
        mail(today, status=Status.FAILED, owner_group=owner)

    with time_machine.travel(NOW, tick=False):
        response = client_for(admin).get(URL)

    assert figure_link(response.content.decode(), "failed", 1)[1] == 3


@pytest.mark.django_db
def test_overview_status_links_open_the_outbox_with_exactly_those_mails(client_for, admin):
    today = berlin(2026, 6, 10, 0, 1)
    this_week = berlin(2026, 6, 4, 12)
    older = berlin(2026, 5, 1)
    expected = {mail(today, status=Status.SENT).pk, mail(this_week, status=Status.SENT).pk}
    mail(older, status=Status.SENT)
    mail(today, status=Status.FAILED)
    client = client_for(admin)

    with time_machine.travel(NOW, tick=False):
        url, count = figure_link(client.get(URL).content.decode(), "sent", 2)
        listed = client.get(url).context["table"].data.data

    assert parse_qs(urlsplit(url).query) == {
        "status": ["sent"],
        "created_at_min": ["2026-06-04"],
    }
    assert (count, {message.pk for message in listed}) == (2, expected)


@pytest.mark.django_db
def test_overview_draws_the_chart_as_svg_without_inline_style(client_for, admin, english):
    server = SmtpConfigurationFactory(name="Hauptserver")
    sent_at = berlin(2026, 6, 10, 11, 15)
    mail(sent_at, status=Status.SENT, sent_at=sent_at, smtp_configuration=server)
    failed = mail(sent_at, status=Status.FAILED, smtp_configuration=server)
    DeliveryAttemptFactory(message=failed, outcome="failed", started_at=sent_at)

    with time_machine.travel(NOW, tick=False):
        response = client_for(admin).get(URL)

    html = response.content.decode()
    assert response["Content-Security-Policy"].startswith("default-src 'self'")
    assert 'style="' not in html and "<script>" not in html
    assert html.count('data-testid="chart-days"') == html.count('data-testid="chart-hours"') == 1
    assert "Per day, last 30 days: 1 sent, 1 failed" in html
    assert "Per hour, last 48 hours: 1 sent, 1 failed" in html
    # The bar of 11:00 (local) says what it holds; coordinates are plain SVG numbers.
    assert "6/10/2026 11 a.m.: 1 sent, 1 failed" in html
    assert re.search(r'<rect class="sent" x="[\d.]+" y="[\d.]+"', html)


@pytest.mark.django_db
def test_overview_nothing_needs_attention_on_a_quiet_day(client_for, admin, english):
    with time_machine.travel(NOW, tick=False):
        response = client_for(admin).get(URL)

    html = response.content.decode()
    assert "Nothing needs attention." in html
    assert "No mail was sent or failed in the last 30 days." in html


@pytest.mark.django_db
def test_overview_queries_do_not_grow_with_mails_actions_or_configurations(
    client_for, viewer, team, django_assert_num_queries
):
    viewer.groups.add(team)
    client = client_for(viewer)

    def add_one(n):
        server = SmtpConfigurationFactory()
        when = berlin(2026, 6, 10, 9, n)
        message = mail(when, status=Status.FAILED, owner_group=team, smtp_configuration=server)
        DeliveryAttemptFactory(message=message, outcome="failed", started_at=when)
        mail(when, status=Status.SENT, sent_at=when, owner_group=team, smtp_configuration=server)
        action = Action.objects.create(
            description=f"Aktion {n}",
            time_of_day=dt.time(7),
            start=berlin(2026, 1, 1),
            group=team,
            template=MailTemplateFactory(),
            smtp_configuration=server,
            next_due_at=berlin(2026, 6, 11, 7),
        )
        ActionRun.objects.create(action=action, slot=when, trigger="schedule", status="failed")

    add_one(1)
    with time_machine.travel(NOW, tick=False):
        client.get(URL)  # the session and permission caches warm alike for both counts
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL).status_code == 200
    add_one(2)
    add_one(3)

    with time_machine.travel(NOW, tick=False), django_assert_num_queries(len(queries)):
        response = client.get(URL)

    assert response.content.decode().count('data-testid="chart-days"') == 3
    assert len(queries) <= 16
