"""End-to-end tests in Debian's Chromium, driven by Playwright's sync API.

Every test here is marked `browser`. The pages are served by pytest-django's
live_server (a real HTTP server in a thread, static files included), so the tests
need transactional database access: the server thread does not see data inside the
test's transaction.
"""

import os
from collections.abc import Callable
from pathlib import Path

import pytest

# Playwright's sync API keeps an asyncio event loop running in the main thread, and
# Django then refuses ORM calls from that thread (SynchronousOnlyOperation) although
# nothing is asynchronous about them: the test code and Playwright take turns.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    # Hooks in a conftest see the whole session's items: mark only the ones below here.
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.browser)


def _carry_serialized_db_contents() -> Callable[[], None]:
    """Keep serialized rollback working once Playwright's event loop runs.

    Django keeps database connections in an asgiref Local that is thread-local while
    no event loop runs and context-local once one does. Starting Playwright therefore
    hands the test thread fresh connection objects, which lack the snapshot of the
    migrated data (role groups, permissions) that serialized rollback restores after
    each live_server test's flush. Take the snapshot before the start, put it back after.
    """
    from django.db import connections

    snapshots = {
        alias: connections[alias]._test_serialized_contents
        for alias in connections
        if hasattr(connections[alias], "_test_serialized_contents")
    }

    def restore() -> None:
        for alias, contents in snapshots.items():
            connections[alias]._test_serialized_contents = contents

    return restore


@pytest.fixture(scope="session")
def browser(django_db_setup):
    executable = os.environ.get("CALMAIL_CHROMIUM", "/usr/bin/chromium")
    if not Path(executable).is_file():
        pytest.skip(
            f"Chromium not found at {executable}: install Debian's chromium package "
            "or point CALMAIL_CHROMIUM at a Chromium binary."
        )
    from playwright.sync_api import sync_playwright

    restore_serialized_db_contents = _carry_serialized_db_contents()
    playwright = sync_playwright().start()
    restore_serialized_db_contents()
    try:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(browser, live_server, django_db_serialized_rollback):
    """A page in a fresh German browser context that fails the test on any browser error.

    Console errors include CSP violations ("Refused to execute inline script …") and
    resources that failed to load; page errors are uncaught JavaScript exceptions.

    Asks for serialized rollback: live_server tests flush the database afterwards,
    which would also wipe the role groups and permissions the migrations created.
    """
    context = browser.new_context(locale="de-DE")
    page = context.new_page()
    errors: list[str] = []
    # A page that is itself an error (the 403 for a user without a role) is what some
    # tests ask for; Chromium still logs its status as a console error. Its resources
    # failing to load is a real error.
    error_documents: set[str] = set()

    def on_response(response):
        if response.request.resource_type == "document" and response.status >= 400:
            error_documents.add(response.url)

    def on_console(message):
        if message.type != "error":
            return
        if message.text.startswith("Failed to load resource") and (
            message.location.get("url") in error_documents
        ):
            return
        errors.append(f"console error: {message.text} ({message.location.get('url')})")

    page.on("response", on_response)
    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    yield page
    context.close()
    if errors:
        pytest.fail("The browser reported errors:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def login(page, live_server) -> Callable[..., None]:
    """Log in through the real login form: login(user, password)."""

    def login_(user, password: str) -> None:
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=username]", user.get_username())
        page.fill("input[name=password]", password)
        with page.expect_navigation():
            page.click("form[action='/accounts/login/'] button[type=submit]")

    return login_
