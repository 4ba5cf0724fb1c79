import os

import pytest

from calmail.common.roles import ADMINISTRATOR, POWER_USER, VIEWER
from tests import clock
from tests.factories import UserFactory

pytest_plugins = ["tests.smtp_server"]

PASSWORD = "correct horse battery staple"

# In CI every test must really run: a skip (no PostgreSQL, no Chromium, ...) is a failure there.
REQUIRE_SERVICES = os.environ.get("CALMAIL_REQUIRE_SERVICES") == "1"


# CALMAIL_TEST_CLOCK=2026-12-06T23:30:00+00:00 runs the whole suite at that wall-clock time
# (ticking on from it), e.g. to catch a UTC date compared with a local one: tests/clock.py.
@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    clock.start_session()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    clock.stop_session()


def pytest_report_header(config):
    moment = clock.destination()
    if moment is not None:
        return f"{clock.VARIABLE}: the clock started at {moment.isoformat()}"
    return None


def pytest_collection_modifyitems(items):
    """Every transactional test gets serialized rollback: the database it leaves is the
    migrated one (roles, permissions), whatever ran before.

    A transactional test ends with a flush. A plain flush lets post_migrate create the
    content types and permissions again, under new ids; a later test that restores the
    serialized database (browser tests, the two-beat race) then fails on a duplicate
    content type, depending on the order the tests happen to run in."""
    for item in items:
        marker = item.get_closest_marker("django_db")
        if (
            marker is not None
            and marker.kwargs.get("transaction")
            and "serialized_rollback" not in marker.kwargs
        ):
            item.add_marker(
                pytest.mark.django_db(*marker.args, **marker.kwargs, serialized_rollback=True),
                append=False,
            )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_SERVICES and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = (
            f"skipped, but CALMAIL_REQUIRE_SERVICES=1 requires every test to run: {reason}"
        )


@pytest.fixture(autouse=True)
def english_outside_requests():
    """Code run outside a request (services, transport) speaks English in tests unless a test
    overrides it; requests still get the site's default language (German) from LocaleMiddleware."""
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture
def admin(db):
    """A user in the Administrator role (not a superuser: roles must carry the rights)."""
    return UserFactory(username="admin-role", roles=[ADMINISTRATOR])


@pytest.fixture
def power_user(db):
    return UserFactory(username="power", roles=[POWER_USER])


@pytest.fixture
def viewer(db):
    return UserFactory(username="viewer", roles=[VIEWER])


@pytest.fixture
def outsider(db):
    """Logged in, but without any role."""
    return UserFactory(username="outsider")


@pytest.fixture
def client_for(client):
    """Log the test client in as a user."""

    def login(user):
        client.force_login(user)
        return client

    return login
