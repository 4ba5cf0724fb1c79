"""The list page every section shares (calmail.common.lists): the create button's label,
the note for users in no team, and what an empty table says."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from tests.factories import SmtpConfigurationFactory

pytestmark = pytest.mark.django_db

NO_TEAM_NOTICE = "You are not in any team yet — ask an administrator."


def english(client):
    client.post("/i18n/setlang/", {"language": "en"})
    return client


def empty_row(response) -> str:
    """The text of the table's one "empty" cell (the page has no other <td colspan>)."""
    html = response.content.decode()
    start = html.index("<td colspan=")
    return html[start : html.index("</td>", start)]


@pytest.mark.parametrize(
    ("list_url", "create_url", "label"),
    [
        ("actions:list", "actions:create", "New action"),
        ("templates_app:list", "templates_app:create", "New template"),
        ("smtpconfig:list", "smtpconfig:create", "New SMTP configuration"),
        (
            "inventory:distributionlist_list",
            "inventory:distributionlist_create",
            "New distribution list",
        ),
        ("inventory:systemaddress_list", "inventory:systemaddress_create", "New system address"),
    ],
)
def test_list_header_button_names_what_it_creates(client_for, admin, list_url, create_url, label):
    response = english(client_for(admin)).get(reverse(list_url))

    html = response.content.decode()
    assert response.context["create_label"] == label
    assert (
        f'<a class="btn btn-primary" href="{reverse(create_url)}">'
        f'<i class="bi bi-plus-lg" aria-hidden="true"></i> {label}</a>'
    ) in html


@pytest.mark.parametrize("role", ["viewer", "power_user"])
def test_list_user_in_no_team_sees_why(request, client_for, role):
    user = request.getfixturevalue(role)

    response = english(client_for(user)).get(reverse("actions:list"))

    html = response.content.decode()
    assert response.context["team_notice"] == NO_TEAM_NOTICE
    assert NO_TEAM_NOTICE in html
    assert html.index('data-testid="team-notice"') < html.index("<table")


def test_list_user_in_no_team_sees_why_in_german(client_for, viewer):
    response = client_for(viewer).get(reverse("templates_app:list"))

    html = response.content.decode()
    assert "Sie sind noch keinem Team zugeordnet — fragen Sie einen Administrator." in html
    assert "Noch keine Einträge." in html


@pytest.mark.parametrize("role", ["viewer", "power_user"])
def test_list_user_in_a_team_sees_no_team_note(request, client_for, role):
    user = request.getfixturevalue(role)
    user.groups.add(Group.objects.create(name="Labor Nord"))

    response = english(client_for(user)).get(reverse("actions:list"))

    assert response.context["team_notice"] == ""
    assert 'data-testid="team-notice"' not in response.content.decode()


def test_list_administrator_in_no_team_sees_no_team_note(client_for, admin):
    response = english(client_for(admin)).get(reverse("smtpconfig:list"))

    assert admin.groups.exclude(name="Administrator").exists() is False
    assert response.context["team_notice"] == ""
    assert 'data-testid="team-notice"' not in response.content.decode()


def test_list_empty_without_filter_offers_the_first_one(client_for, admin):
    response = english(client_for(admin)).get(reverse("actions:list"))

    cell = empty_row(response)
    assert "No entries yet." in cell
    assert f'href="{reverse("actions:create")}"' in cell
    assert "New action</a>" in cell
    assert "No entries match." not in response.content.decode()


def test_list_empty_without_filter_and_no_right_to_create_has_no_button(client_for, viewer):
    response = english(client_for(viewer)).get(reverse("actions:list"))

    cell = empty_row(response)
    assert "No entries yet." in cell
    assert "<a " not in cell
    assert reverse("actions:create") not in response.content.decode()


def test_list_empty_with_filter_says_nothing_matches(client_for, admin):
    SmtpConfigurationFactory(name="Hauptserver")

    response = english(client_for(admin)).get(reverse("smtpconfig:list"), {"q": "gibt es nicht"})

    cell = empty_row(response)
    assert "No entries match." in cell
    assert "No entries yet." not in cell
    assert "<a " not in cell


def test_list_sorting_or_paging_alone_is_no_filter(client_for, admin):
    response = english(client_for(admin)).get(
        reverse("templates_app:list"), {"sort": "name", "per_page": "10"}
    )

    cell = empty_row(response)
    assert response.context["filters_active"] is False
    assert "No entries yet." in cell
    assert f'href="{reverse("templates_app:create")}"' in cell
