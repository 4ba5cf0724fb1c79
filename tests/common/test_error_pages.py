"""403, 404 and 500 pages: the site's layout, the reader's language, a way back."""

import pytest
from django.test import Client


@pytest.fixture(autouse=True)
def production(settings):
    settings.DEBUG = False


@pytest.fixture
def english(client):
    """The client reading English (pages default to German)."""
    client.cookies["django_language"] = "en"
    return client


def _html(response) -> str:
    return response.content.decode()


@pytest.mark.django_db
def test_404_has_the_layout_the_navigation_and_a_way_home_in_german(client_for, admin):
    response = client_for(admin).get("/no-such-page/")

    html = _html(response)
    assert response.status_code == 404
    assert response.templates[0].name == "404.html"
    assert '<html lang="de">' in html
    # The site's navigation, in German, and the way back.
    assert "Postfach" in html
    assert 'data-testid="error-home"' in html and 'href="/"' in html


@pytest.mark.django_db
def test_404_in_english_for_an_english_reader(client_for, admin, english):
    client_for(admin)
    response = english.get("/outbox/999999/")

    html = _html(response)
    assert (response.status_code, response.get("Location"), '<html lang="en">' in html) == (
        404,
        None,
        True,
    )
    assert "Page not found" in html
    # The exception's own (English, technical) text stays out of the page.
    assert "No OutboxMessage matches" not in html


@pytest.mark.django_db
def test_404_for_an_anonymous_visitor_offers_sign_in(client, english):
    response = english.get("/no-such-page/")

    html = _html(response)
    assert response.status_code == 404
    assert 'data-testid="error-home"' in html and 'href="/accounts/login/"' in html


@pytest.mark.django_db
def test_403_from_permission_denied_has_the_layout(client_for, viewer, english):
    response = client_for(viewer).get("/smtp/new/")

    html = _html(response)
    assert (response.status_code, response.templates[0].name) == (403, "403.html")
    assert "Access denied" in html and 'id="main-navbar"' in html
    assert 'data-testid="error-home"' in html


@pytest.mark.django_db
def test_403_from_a_csrf_failure_explains_and_has_the_layout(admin, settings):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    # No language switch by POST: with CSRF enforced it would be refused itself.
    client.cookies["django_language"] = "en"

    response = client.post("/accounts/logout/")

    html = _html(response)
    assert (response.status_code, response.templates[0].name) == (403, "403_csrf.html")
    assert "The form could not be sent" in html and 'id="main-navbar"' in html
    assert "_auth_user_id" in client.session


@pytest.mark.django_db
def test_500_is_a_page_of_its_own_in_the_readers_language(admin, settings):
    settings.ROOT_URLCONF = "tests.common.error_urls"
    client = Client(raise_request_exception=False)
    client.force_login(admin)
    client.cookies["django_language"] = "en"

    response = client.get("/test-500/")

    html = _html(response)
    assert response.status_code == 500
    assert '<html lang="en">' in html
    assert "Something went wrong on our side." in html
    assert 'data-testid="error-home"' in html
    assert 'style="' not in html and "<script" not in html


@pytest.mark.django_db
def test_500_in_german_by_default(admin, settings):
    settings.ROOT_URLCONF = "tests.common.error_urls"
    client = Client(raise_request_exception=False)
    client.force_login(admin)

    response = client.get("/test-500/")

    assert (response.status_code, '<html lang="de">' in _html(response)) == (500, True)
