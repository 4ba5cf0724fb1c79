import datetime
import re

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Team
from calmail.common.roles import ADMINISTRATOR, POWER_USER, VIEWER
from inventory.models import UserProfile
from mailbox.models import OutboxMessage
from maillog.models import Category, LogEntry
from tests.accounts.conftest import make_action, role_names, team_names
from tests.csv_export import read_csv
from tests.factories import OutboxMessageFactory, UserFactory

pytestmark = pytest.mark.django_db

SECRET = "Geheim-Passwort-4711!"

# (URL name, needs a pk of: "user" | "team" | None, method)
PAGES = [
    ("accounts:user_list", None),
    ("accounts:user_create", None),
    ("accounts:user_update", "user"),
    ("accounts:user_password", "user"),
    ("accounts:user_password_link", "user"),
    ("accounts:user_deactivate", "user"),
    ("accounts:user_reactivate", "user"),
    ("accounts:user_delete", "user"),
    ("accounts:team_list", None),
    ("accounts:team_create", None),
    ("accounts:team_detail", "team"),
    ("accounts:team_update", "team"),
    ("accounts:team_delete", "team"),
]
BULK = ["accounts:user_bulk", "accounts:team_bulk"]


def url(name, kind, *, user, team):
    if kind is None:
        return reverse(name)
    return reverse(name, args=[user.pk if kind == "user" else team.pk])


def text(response) -> str:
    return response.content.decode()


def english(client):
    client.post("/i18n/setlang/", {"language": "en"})
    return client


def rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return read_csv(body.decode("utf-8-sig"))


# --- who may open what --------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind"), PAGES)
def test_anonymous_is_sent_to_sign_in(client, member, team, name, kind):
    for method in (client.get, client.post):
        response = method(url(name, kind, user=member, team=team))

        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.parametrize("role", ["viewer", "power_user", "outsider"])
@pytest.mark.parametrize(("name", "kind"), PAGES)
def test_only_administrators_manage_people(client_for, request, member, team, role, name, kind):
    client = client_for(request.getfixturevalue(role))
    target = url(name, kind, user=member, team=team)

    assert client.get(target).status_code == 403
    assert client.post(target, {"name": "X", "username": "x", "role": VIEWER}).status_code == 403

    member.refresh_from_db()
    assert member.is_active
    assert Group.objects.filter(pk=team.pk, name="Labor Nord").exists()


@pytest.mark.parametrize("name", BULK)
@pytest.mark.parametrize("role", ["viewer", "power_user"])
def test_bulk_actions_refused_to_non_administrators(client_for, request, member, role, name):
    response = client_for(request.getfixturevalue(role)).post(
        reverse(name), {"action": "delete", "selection": [member.pk], "confirm": "1"}
    )

    assert response.status_code == 403
    assert get_user_model().objects.filter(pk=member.pk).exists()


def test_the_permission_alone_is_not_enough(client_for, power_user, member):
    """Someone handed auth.view_user in Django admin is still not an administrator."""
    from django.contrib.auth.models import Permission

    power_user.user_permissions.add(Permission.objects.get(codename="view_user"))

    assert client_for(power_user).get(reverse("accounts:user_list")).status_code == 403


@pytest.mark.parametrize(("name", "kind"), PAGES)
def test_administrators_open_every_page(client_for, admin, member, team, name, kind):
    response = client_for(admin).get(url(name, kind, user=member, team=team))

    assert response.status_code == 200
    expected = {"user": "Paula Peters", "team": "Labor Nord", None: "<h1"}[kind]
    assert expected in text(response).split('id="main"')[1]


def test_navigation_shows_users_and_teams_to_administrators_only(client_for, admin, viewer):
    link = 'href="/accounts/users/"'

    assert link in text(client_for(admin).get(reverse("mailbox:list")))
    assert link not in text(client_for(viewer).get(reverse("mailbox:list")))


# --- users list ------------------------------------------------------------------------------


def test_user_list_shows_every_column(client_for, admin, member):
    UserProfile.objects.create(user=member, language="de")

    page = text(client_for(admin).get(reverse("accounts:user_list")))

    for heading in (
        "Name",
        "Benutzername",
        "E-Mail-Adresse",
        "Rolle",
        "Teams",
        "Sprache",
        "Aktiv",
        "Letzte Anmeldung",
        "Erstellt",
    ):
        assert f">{heading}<" in page or f">{heading}</a>" in page, heading
    assert "Paula Peters" in page
    assert "Power-User" in page
    assert "Labor Nord" in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"q": "peters"}, ["paula"]),
        ({"name": "Paula"}, ["paula"]),
        ({"username": "admin"}, ["admin-role"]),
        ({"email": "paula@"}, ["paula"]),
        ({"role": ADMINISTRATOR}, ["admin-role"]),
        ({"role": "none"}, ["nobody"]),
        ({"teams": "TEAM"}, ["paula"]),
        ({"teams": "null"}, ["admin-role", "nobody", "vera"]),
        ({"language": "en"}, ["vera"]),
        ({"is_active": "no"}, ["vera"]),
        ({"last_login_min": "2026-01-01", "last_login_max": "2026-06-30"}, ["nobody"]),
    ],
)
# The admin's sign-in sets their last login to now: keep now out of the range above.
@pytest.mark.time_machine(datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.UTC), tick=False)
def test_user_list_filters_per_column(client_for, admin, member, team, query, expected):
    vera = UserFactory(username="vera", roles=[VIEWER], is_active=False)
    UserProfile.objects.create(user=vera, language="en")
    nobody = UserFactory(username="nobody")
    get_user_model().objects.filter(pk=nobody.pk).update(last_login="2026-03-01T10:00:00Z")
    if query.get("teams") == "TEAM":
        query = {"teams": team.pk}

    response = client_for(admin).get(reverse("accounts:user_list"), {**query, "_export": "csv"})

    usernames = sorted(row[1] for row in rows(response)[1:])
    assert usernames == expected


def test_user_list_sorts_by_role(client_for, admin, member):
    UserFactory(username="vera", roles=[VIEWER])

    response = client_for(admin).get(
        reverse("accounts:user_list"), {"sort": "role", "_export": "csv"}
    )

    assert [row[3] for row in rows(response)[1:]] == ["Administrator", "Power-User", "Betrachter"]


def test_user_list_exports_readable_values(client_for, admin, member):
    response = client_for(admin).get(reverse("accounts:user_list"), {"_export": "csv"})

    table = rows(response)
    assert table[0] == [
        "Name",
        "Benutzername",
        "E-Mail-Adresse",
        "Rolle",
        "Teams",
        "Sprache",
        "Aktiv",
        "Anmeldung gesperrt",
        "Letzte Anmeldung",
        "Erstellt",
    ]
    paula = next(row for row in table if row[1] == "paula")
    assert paula[:7] == [
        "Paula Peters",
        "paula",
        "paula@example.com",
        "Power-User",
        "Labor Nord",
        "Deutsch",
        "ja",
    ]


def test_user_list_query_count_does_not_grow_with_rows(
    client_for, admin, team, django_assert_num_queries
):
    client = client_for(admin)
    client.get(reverse("accounts:user_list"))
    with CaptureQueriesContext(connection) as one_row:
        client.get(reverse("accounts:user_list"))
    for name in ("a", "b"):
        user = UserFactory(username=name, roles=[POWER_USER])
        user.groups.add(team)

    with django_assert_num_queries(len(one_row.captured_queries)):
        client.get(reverse("accounts:user_list"))


# --- create and edit -----------------------------------------------------------------------


def user_form(**overrides):
    data = {
        "first_name": "Paul",
        "last_name": "Neumann",
        "username": "pneumann",
        "email": "paul.neumann@example.com",
        "role": POWER_USER,
        "language": "de",
        "is_active": "on",
        "password_mode": "link",
    }
    data.update(overrides)
    return data


def test_create_user_sends_the_set_password_link_through_the_outbox(
    client_for, admin, team, default_smtp
):
    response = client_for(admin).post(
        reverse("accounts:user_create"), user_form(teams=[team.pk]), follow=True
    )

    user = get_user_model().objects.get(username="pneumann")
    assert role_names(user) == {POWER_USER}
    assert team_names(user) == ["Labor Nord"]
    assert not user.has_usable_password()
    [mail] = OutboxMessage.objects.all()
    assert mail.to == ["paul.neumann@example.com"]
    assert mail.created_by == admin
    assert "/accounts/password/set/" in mail.body_text
    page = text(response)
    assert "pneumann angelegt." in page
    assert "paul.neumann@example.com" in page


def test_create_user_without_smtp_configuration_keeps_the_user_and_says_why(client_for, admin):
    response = client_for(admin).post(reverse("accounts:user_create"), user_form(), follow=True)

    assert get_user_model().objects.filter(username="pneumann").exists()
    assert OutboxMessage.objects.count() == 0
    assert (
        "Der Link zum Festlegen des Passworts konnte nicht in den Postausgang gestellt werden: "
        "Es gibt keine SMTP-Konfiguration" in text(response)
    )


def test_create_user_with_a_password_signs_in(client_for, admin, client):
    client_for(admin).post(
        reverse("accounts:user_create"),
        user_form(password_mode="set", password1=SECRET, password2=SECRET),
    )
    client.logout()

    response = client.post(reverse("login"), {"username": "pneumann", "password": SECRET})
    assert response["Location"] == reverse("home")
    assert SECRET not in str(list(LogEntry.objects.values()))


def test_create_user_form_errors_keep_what_was_typed(client_for, admin):
    UserFactory(username="taken", email="taken@example.com")

    response = client_for(admin).post(
        reverse("accounts:user_create"),
        user_form(
            username="taken",
            email="TAKEN@example.com",
            password_mode="set",
            password1="a",
            password2="b",
        ),
    )

    assert response.status_code == 200
    page = text(response)
    assert 'value="Neumann"' in page
    assert "Die beiden Passwörter stimmen nicht überein." in page
    assert get_user_model().objects.filter(username="taken").count() == 1


def test_link_mode_needs_an_address(client_for, admin):
    response = client_for(admin).post(reverse("accounts:user_create"), user_form(email=""))

    assert response.status_code == 200
    assert not get_user_model().objects.filter(username="pneumann").exists()


def test_edit_user_changes_role_teams_and_language(client_for, admin, member, team, other_team):
    response = client_for(admin).post(
        reverse("accounts:user_update", args=[member.pk]),
        user_form(
            username="paula",
            first_name="Paula",
            last_name="Peters",
            email="paula@example.com",
            role=VIEWER,
            teams=[other_team.pk],
            language="en",
        ),
    )

    assert response.status_code == 302
    member.refresh_from_db()
    assert role_names(member) == {VIEWER}
    assert team_names(member) == ["Labor Süd"]
    assert member.profile.language == "en"
    entry = LogEntry.objects.filter(category=Category.USERS, object_id=member.pk).last()
    assert entry.actor == admin
    assert entry.changes["role"] == [POWER_USER, VIEWER]


def test_edit_form_shows_current_values_and_no_password_fields(client_for, admin, member):
    page = text(client_for(admin).get(reverse("accounts:user_update", args=[member.pk])))

    assert 'value="paula"' in page
    assert 'name="password1"' not in page
    assert re.search(r'value="Power user"[^>]*checked', page)


def test_administrator_cannot_demote_themselves_as_the_last_one(client_for, admin):
    response = client_for(admin).post(
        reverse("accounts:user_update", args=[admin.pk]),
        user_form(username=admin.username, email=admin.email, role=VIEWER),
    )

    assert response.status_code == 200
    assert "calmail braucht mindestens einen aktiven Administrator" in text(response)
    assert role_names(admin) == {ADMINISTRATOR}


def test_roles_never_appear_as_teams_in_the_form(client_for, admin, team):
    page = text(client_for(admin).get(reverse("accounts:user_create")))
    teams_part = page.split('id="div_id_teams"')[1].split("</fieldset>")[0]

    assert "Labor Nord" in teams_part
    for role in ("Administrator", "Power user", "Viewer"):
        assert f">{role}<" not in teams_part and f" {role}\n" not in teams_part


# --- password ------------------------------------------------------------------------------


def test_set_password_page(client_for, admin, member, client):
    response = client_for(admin).post(
        reverse("accounts:user_password", args=[member.pk]),
        {"new_password1": SECRET, "new_password2": SECRET},
    )

    assert response.status_code == 302
    member.refresh_from_db()
    assert member.check_password(SECRET)


def test_set_password_refuses_a_weak_one(client_for, admin, member):
    response = client_for(admin).post(
        reverse("accounts:user_password", args=[member.pk]),
        {"new_password1": "paula", "new_password2": "paula"},
    )

    assert response.status_code == 200
    member.refresh_from_db()
    assert not member.check_password("paula")


def test_password_link_page_sends_and_the_link_sets_the_password(
    client_for, admin, member, default_smtp, client
):
    client_for(admin).post(reverse("accounts:user_password_link", args=[member.pk]))
    client.logout()
    [mail] = OutboxMessage.objects.all()
    [link] = re.findall(r"http://[^/]+(/accounts/password/set/\S+/)", mail.body_text)

    form_page = client.get(link, follow=True)
    assert "Für den Benutzer <strong>paula</strong>." in text(form_page)
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": SECRET, "new_password2": SECRET}, follow=True)

    assert done.redirect_chain[-1][0] == reverse("password_reset_complete")
    member.refresh_from_db()
    assert member.check_password(SECRET)
    assert LogEntry.objects.filter(
        category=Category.USERS, actor=member, message__contains="through a link"
    ).exists()
    # Used once: the same link no longer works.
    again = client.get(link, follow=True)
    assert 'data-testid="invalid-link"' in text(again)


def test_password_link_refused_up_front_without_an_address(client_for, admin):
    nameless = UserFactory(username="ohne", email="")

    page = text(client_for(admin).get(reverse("accounts:user_password_link", args=[nameless.pk])))

    assert "alert-danger" in page
    assert 'type="submit" class="btn btn-primary"' not in page


def test_forgotten_password_goes_through_the_outbox_and_reveals_nothing(
    client, member, default_smtp
):
    member.set_password(SECRET)
    member.save()

    known = client.post(reverse("password_reset"), {"email": member.email}, follow=True)
    unknown = client.post(reverse("password_reset"), {"email": "nobody@example.com"}, follow=True)

    assert known.redirect_chain == unknown.redirect_chain
    assert [mail.to for mail in OutboxMessage.objects.all()] == [[member.email]]
    assert "Forgotten password" in LogEntry.objects.get(category=Category.USERS).message


def test_login_page_links_to_forgotten_password(client):
    assert reverse("password_reset") in text(client.get(reverse("login")))


# --- deactivate, reactivate, delete --------------------------------------------------------


def test_deactivate_and_reactivate(client_for, admin, member):
    client = client_for(admin)

    client.post(reverse("accounts:user_deactivate", args=[member.pk]))
    member.refresh_from_db()
    assert not member.is_active

    client.post(reverse("accounts:user_reactivate", args=[member.pk]))
    member.refresh_from_db()
    assert member.is_active


def test_deactivating_yourself_is_refused_up_front(client_for, admin, second_admin):
    page = text(client_for(admin).get(reverse("accounts:user_deactivate", args=[admin.pk])))

    assert "alert-danger" in page
    assert 'class="btn btn-danger"' not in page


def test_delete_refused_with_reasons_and_links_for_a_user_with_mails(client_for, admin, member):
    OutboxMessageFactory(created_by=member)

    client = client_for(admin)
    page = text(client.get(reverse("accounts:user_delete", args=[member.pk])))
    client.post(reverse("accounts:user_delete", args=[member.pk]))

    assert "deaktivieren" in page.lower()
    assert 'data-testid="refusal-links"' in page
    assert f"/outbox/?created_by={member.pk}" in page
    assert 'class="btn btn-danger"' not in page
    assert get_user_model().objects.filter(pk=member.pk).exists()


def test_delete_a_user_without_traces(client_for, admin):
    temp = UserFactory(username="temp")

    client_for(admin).post(reverse("accounts:user_delete", args=[temp.pk]))

    assert not get_user_model().objects.filter(pk=temp.pk).exists()


def test_bulk_deactivate_leaves_out_yourself(client_for, admin, second_admin, member):
    client = client_for(admin)
    data = {"action": "deactivate", "selection": [admin.pk, member.pk]}
    confirm = client.post(reverse("accounts:user_bulk"), data)
    assert "paula" in text(confirm)

    client.post(reverse("accounts:user_bulk"), {**data, "confirm": "1"})

    admin.refresh_from_db()
    member.refresh_from_db()
    assert (admin.is_active, member.is_active) == (True, False)


def test_bulk_password_links(client_for, admin, member, default_smtp):
    nameless = UserFactory(username="ohne", email="")

    client_for(admin).post(
        reverse("accounts:user_bulk"),
        {"action": "password_link", "selection": [member.pk, nameless.pk], "confirm": "1"},
    )

    assert [mail.to for mail in OutboxMessage.objects.all()] == [["paula@example.com"]]


# --- teams ---------------------------------------------------------------------------------


def test_team_list_columns_and_counts(client_for, admin, team, member):
    make_action(group=team)
    OutboxMessageFactory(owner_group=team)

    response = client_for(admin).get(reverse("accounts:team_list"), {"_export": "csv"})

    table = rows(response)
    assert table[0] == [
        "Name",
        "Mitglieder",
        "Aktionen",
        "Vorlagen",
        "Verteilergruppen",
        "Mails (30 Tage)",
    ]
    assert table[1:] == [["Labor Nord", "1", "1", "0", "0", "1"]]


def test_team_list_never_shows_roles(client_for, admin, team):
    page = text(client_for(admin).get(reverse("accounts:team_list")))

    assert "Labor Nord" in page
    assert "Betrachter" not in page


def test_team_list_query_count_does_not_grow_with_rows(
    client_for, admin, team, django_assert_num_queries
):
    client = client_for(admin)
    client.get(reverse("accounts:team_list"))
    with CaptureQueriesContext(connection) as one_row:
        client.get(reverse("accounts:team_list"))
    Team.objects.create(name="B")
    Team.objects.create(name="C")

    with django_assert_num_queries(len(one_row.captured_queries)):
        client.get(reverse("accounts:team_list"))


def test_create_team_with_members(client_for, admin, member):
    response = client_for(admin).post(
        reverse("accounts:team_create"), {"name": "Labor West", "members": [member.pk]}
    )

    team = Team.objects.get(name="Labor West")
    assert response["Location"] == reverse("accounts:team_detail", args=[team.pk])
    assert team_names(member) == ["Labor Nord", "Labor West"]


def test_create_team_named_like_a_role_is_refused_on_the_field(client_for, admin):
    response = client_for(admin).post(reverse("accounts:team_create"), {"name": "Betrachter"})

    assert response.status_code == 200
    assert "„Betrachter“ ist der Name einer Rolle" in text(response)
    assert not Team.objects.exists()


def test_team_detail_lists_members_and_what_belongs(client_for, admin, team, member):
    make_action(group=team)

    page = text(client_for(admin).get(reverse("accounts:team_detail", args=[team.pk])))

    assert "Paula Peters" in page
    assert f"/actions/?group={team.pk}" in page


def test_rename_team_and_manage_members_from_the_team_side(client_for, admin, team, member):
    other = UserFactory(username="otto")

    client_for(admin).post(
        reverse("accounts:team_update", args=[team.pk]),
        {"name": "Labor Nordost", "members": [other.pk]},
    )

    team.refresh_from_db()
    assert team.name == "Labor Nordost"
    assert team_names(other) == ["Labor Nordost"]
    assert team_names(member) == []


def test_team_delete_refused_up_front_with_links(client_for, admin, team):
    make_action(group=team)

    client = client_for(admin)
    page = text(client.get(reverse("accounts:team_delete", args=[team.pk])))
    client.post(reverse("accounts:team_delete", args=[team.pk]))

    assert f"/actions/?group={team.pk}" in page
    assert 'class="btn btn-danger"' not in page
    assert Group.objects.filter(pk=team.pk).exists()


def test_team_delete(client_for, admin, team, member):
    client_for(admin).post(reverse("accounts:team_delete", args=[team.pk]))

    assert not Group.objects.filter(pk=team.pk).exists()
    assert get_user_model().objects.filter(pk=member.pk).exists()


def test_team_bulk_delete_leaves_out_teams_in_use(client_for, admin, team, other_team):
    make_action(group=team)

    client_for(admin).post(
        reverse("accounts:team_bulk"),
        {"action": "delete", "selection": [team.pk, other_team.pk], "confirm": "1"},
    )

    assert list(Team.objects.values_list("name", flat=True)) == ["Labor Nord"]


def test_english_pages(client_for, admin, member):
    client = english(client_for(admin))

    page = text(client.get(reverse("accounts:user_list")))

    assert "Users" in page and "Last login" in page


# --- one language per user -------------------------------------------------------------------


def test_sign_in_switches_the_pages_to_the_users_language(client, member):
    member.set_password(SECRET)
    member.save()
    UserProfile.objects.create(user=member, language="en")

    response = client.post(reverse("login"), {"username": "paula", "password": SECRET}, follow=True)

    assert response.wsgi_request.LANGUAGE_CODE == "en"
    assert '<html lang="en">' in text(response)


def test_sign_in_without_a_profile_keeps_the_chosen_language(client, member):
    member.set_password(SECRET)
    member.save()
    english(client)

    response = client.post(reverse("login"), {"username": "paula", "password": SECRET}, follow=True)

    assert '<html lang="en">' in text(response)
    assert not UserProfile.objects.filter(user=member).exists()


def test_language_switch_of_a_signed_in_user_is_their_profile_language(client_for, member):
    client = client_for(member)

    client.post(reverse("set_language"), {"language": "en", "next": "/outbox/"})

    assert UserProfile.objects.get(user=member).language == "en"


def test_language_switch_on_the_login_page_stores_nothing(client):
    response = client.post(reverse("set_language"), {"language": "en", "next": "/accounts/login/"})

    assert response.status_code == 302
    assert response.cookies["django_language"].value == "en"
    assert not UserProfile.objects.exists()


# --- the Log ---------------------------------------------------------------------------------


def test_log_links_user_and_team_entries_for_administrators(client_for, admin, member):
    client = client_for(admin)
    client.post(reverse("accounts:team_create"), {"name": "Labor West", "members": [member.pk]})
    client.post(reverse("accounts:user_deactivate", args=[member.pk]))
    team = Team.objects.get(name="Labor West")

    page = text(client.get(reverse("maillog:list"), {"category": "users"}))

    assert f'href="/accounts/teams/{team.pk}/"' in page
    assert f'href="/accounts/users/{member.pk}/edit/"' in page


def test_log_shows_a_users_own_sign_in_without_a_link_they_cannot_open(client, viewer):
    viewer.set_password(SECRET)
    viewer.save()
    client.post(reverse("login"), {"username": "viewer", "password": SECRET})

    # Sign-ins are a category of their own, listed when it is chosen.
    page = text(client.get(reverse("maillog:list"), {"category": "sign_in"}))

    assert "viewer hat sich angemeldet" in page
    assert f"/accounts/users/{viewer.pk}/edit/" not in page


def test_forgotten_password_sends_one_link_per_user_in_five_minutes(client, member, default_smtp):
    member.set_password(SECRET)
    member.save()
    start = timezone.now()

    with time_machine.travel(start, tick=False):
        client.post(reverse("password_reset"), {"email": member.email})
        client.post(reverse("password_reset"), {"email": member.email})
    with time_machine.travel(start + datetime.timedelta(minutes=6), tick=False):
        client.post(reverse("password_reset"), {"email": member.email})

    assert OutboxMessage.objects.count() == 2


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/password/forgotten/",
        "/accounts/password/forgotten/sent/",
        "/accounts/password/set/done/",
        "/accounts/password/set/MQ/bad-token/",
    ],
)
def test_password_pages_are_open_before_sign_in(client, path):
    response = client.get(path)

    assert response.status_code == 200
    assert 'name="password"' not in text(response)
