"""The page shell: login, logout, language switcher, role-less users, health check, CSP."""

import json
from html.parser import HTMLParser

import pytest
from django.conf import settings
from django.contrib.auth.models import Group

from calmail.common.roles import ADMINISTRATOR

PASSWORD = "correct horse battery staple"


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password=PASSWORD)


@pytest.fixture
def administrator(user):
    user.groups.add(Group.objects.get(name=ADMINISTRATOR))
    return user


def _html(response) -> str:
    return response.content.decode()


def _use_language(client, code: str) -> None:
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = code


class _TagCollector(HTMLParser):
    """Every start tag of a page with its attributes, to look at markup without regexes."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(response) -> list[tuple[str, dict[str, str | None]]]:
    collector = _TagCollector()
    collector.feed(_html(response))
    return collector.tags


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/smtp/"])
def test_page_anonymous_redirects_to_login_with_next(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


@pytest.mark.django_db
def test_login_page_renders_form_with_next_and_language_switcher(client):
    response = client.get("/accounts/login/?next=/smtp/")

    html = _html(response)
    assert response.status_code == 200
    assert 'name="username"' in html
    assert 'name="password"' in html
    assert '<input type="hidden" name="next" value="/smtp/">' in html
    assert 'action="/i18n/setlang/"' in html
    assert 'name="language" value="de"' in html
    assert 'name="language" value="en"' in html
    assert '<input type="hidden" name="next" value="/accounts/login/?next=/smtp/">' in html


@pytest.mark.django_db
def test_login_user_without_role_lands_on_no_role_page(client, user):
    _use_language(client, "en")

    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}, follow=True
    )

    assert response.redirect_chain == [("/", 302)]
    assert response.status_code == 403
    assert response.templates[0].name == "common/no_role.html"
    assert "Your account has no role yet" in _html(response)
    assert client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db
def test_no_role_page_explains_to_ask_an_administrator(client, user):
    _use_language(client, "en")
    client.force_login(user)

    response = client.get("/")

    html = _html(response)
    assert response.status_code == 403
    assert "Your account has no role yet" in html
    assert "Please ask an administrator" in html
    assert 'href="/smtp/"' not in html


@pytest.mark.django_db
def test_login_wrong_password_shows_error(client, user):
    _use_language(client, "en")

    response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})

    assert response.status_code == 200
    assert "Please enter a correct username and password." in _html(response)
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_login_administrator_sees_section_in_navbar(client, administrator):
    client.force_login(administrator)

    response = client.get("/smtp/")

    nav_links = [
        attrs
        for tag, attrs in _tags(response)
        if tag == "a" and "nav-link" in attrs.get("class", "").split()
    ]
    assert response.status_code == 200
    active = [attrs for attrs in nav_links if "active" in attrs["class"].split()]
    assert active == [{"class": "nav-link active", "href": "/smtp/", "aria-current": "page"}]
    # The overview (the home page) comes first, then the sections in the design's order.
    assert nav_links[0] == {"class": "nav-link", "href": "/overview/"}
    assert nav_links[1] == {"class": "nav-link", "href": "/actions/"}
    assert "alice" in _html(response)


@pytest.mark.django_db
def test_navigation_administrator_sees_every_section_in_order(client, administrator):
    client.force_login(administrator)
    _use_language(client, "en")

    sections = client.get("/smtp/").context["nav_sections"]

    # Each app's AppConfig declares its entries (nav_entries); calmail.common orders them.
    assert [(s["key"], str(s["label"]), s["url"], s["icon"]) for s in sections] == [
        ("overview", "Overview", "/overview/", "speedometer2"),
        ("actions", "Actions", "/actions/", "calendar-event"),
        ("mailbox", "Outbox", "/outbox/", "inbox"),
        ("templates", "Templates", "/templates/", "file-earmark-text"),
        ("smtpconfig", "SMTP configurations", "/smtp/", "hdd-network"),
        ("distribution_lists", "Distribution lists", "/inventory/lists/", "people"),
        ("system_addresses", "System addresses", "/inventory/system-addresses/", "building"),
        ("calserver_data", "Customers & instruments", "/inventory/data/", "rulers"),
        ("imports", "Import", "/imports/", "upload"),
        ("maillog", "Log", "/log/", "journal-text"),
        ("calserver", "calServer", "/calserver/", "cloud-arrow-down"),
        ("accounts", "Users & teams", "/accounts/users/", "person-gear"),
        ("compose", "Compose", "/compose/", "pencil-square"),
    ]


@pytest.mark.django_db
def test_navigation_groups_the_data_pages_in_one_menu(client, administrator):
    client.force_login(administrator)
    _use_language(client, "en")

    response = client.get("/inventory/lists/")
    menu = response.context["nav_menu"]

    # The bar fits one line at 1,366 px: the data pages share one menu where the first
    # of them stands.
    assert [item["key"] for item in menu] == [
        "overview",
        "actions",
        "mailbox",
        "templates",
        "smtpconfig",
        "data",
        "maillog",
        "accounts",
        "compose",
    ]
    [data] = [item for item in menu if item["key"] == "data"]
    assert str(data["label"]) == "Data & recipients"
    assert [child["key"] for child in data["children"]] == [
        "distribution_lists",
        "system_addresses",
        "calserver_data",
        "imports",
        "calserver",
    ]
    html = response.content.decode()
    assert 'data-testid="nav-menu-data"' in html
    assert 'class="dropdown-item active" href="/inventory/lists/"' in html


@pytest.mark.django_db
def test_navigation_user_without_role_sees_no_section(client, user):
    client.force_login(user)

    response = client.get("/")

    assert response.status_code == 403
    assert response.context["nav_sections"] == []


@pytest.mark.django_db
def test_home_administrator_redirects_to_the_overview(client, administrator):
    client.force_login(administrator)

    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/overview/"


@pytest.mark.django_db
def test_logout_post_ends_session(client, user):
    client.force_login(user)

    response = client.post("/accounts/logout/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_logout_get_is_refused_and_keeps_session(client, user):
    client.force_login(user)

    response = client.get("/accounts/logout/")

    assert response.status_code == 405
    assert client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db
def test_page_logged_in_has_logout_post_form(client, user):
    client.force_login(user)

    html = _html(client.get("/"))

    assert '<form method="post" action="/accounts/logout/">' in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "username_label"), [("en", "Username"), ("de", "Benutzername")]
)
def test_language_switcher_sets_language_of_login_page(client, language, username_label):
    response = client.post("/i18n/setlang/", {"language": language, "next": "/accounts/login/"})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == language
    html = _html(client.get("/accounts/login/"))
    assert f'<html lang="{language}">' in html
    assert username_label in html
    pressed = [
        attrs["value"]
        for tag, attrs in _tags(client.get("/accounts/login/"))
        if tag == "button" and attrs.get("aria-pressed") == "true"
    ]
    assert pressed == [language]


@pytest.mark.django_db
def test_login_page_default_language_is_german(client):
    html = _html(client.get("/accounts/login/"))

    assert '<html lang="de">' in html
    assert "Benutzername" in html


@pytest.mark.django_db
def test_healthz_default_broker_is_ok(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok"},
    }


@pytest.mark.django_db
def test_healthz_broker_unreachable_is_unavailable(client, settings):
    # Port 1 is closed: the broker check fails fast with a connection refusal.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"

    response = client.get("/healthz")

    body = json.loads(response.content)
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error: ")
    assert "127.0.0.1" not in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("logged_in", [False, True])
def test_page_has_csp_and_no_inline_code(client, administrator, logged_in):
    if logged_in:
        client.force_login(administrator)
    path = "/smtp/" if logged_in else "/accounts/login/"

    response = client.get(path)

    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    tags = _tags(response)
    assert [attrs for tag, attrs in tags if tag == "script" and "src" not in attrs] == []
    assert [tag for tag, attrs in tags if "style" in attrs] == []
    assert [name for _tag, attrs in tags for name in attrs if name.startswith("on")] == []
    scripts = [attrs["src"] for tag, attrs in tags if tag == "script"]
    assert scripts[:2] == [
        "/static/vendor/bootstrap/js/bootstrap.bundle.min.js",
        "/static/js/calmail.js",
    ]
