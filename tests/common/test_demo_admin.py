import stat
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from calmail.common.roles import ROLE_NAMES
from maillog.models import LogEntry

pytestmark = pytest.mark.django_db


def sign_in_request():
    # django-axes checks every sign-in against its locks, so authenticate needs a request.
    return RequestFactory().post("/accounts/login/")


@pytest.fixture
def demo_settings(settings, tmp_path):
    settings.DEBUG = True
    settings.VAR_DIR = tmp_path
    return settings


def run_ensure_demo_admin(*args: str) -> str:
    out = StringIO()
    call_command("ensure_demo_admin", *args, stdout=out)
    return out.getvalue()


def stored_password(var_dir) -> str:
    return (var_dir / "keys" / "demo_admin_password").read_text().strip()


def test_ensure_demo_admin_first_run_creates_superuser_administrator(demo_settings, tmp_path):
    output = run_ensure_demo_admin()

    password = stored_password(tmp_path)
    user = get_user_model().objects.get(username="admin")
    assert user.is_superuser is True
    assert user.is_staff is True
    assert sorted(user.groups.values_list("name", flat=True)) == ["Administrator", "Standard"]
    assert authenticate(sign_in_request(), username="admin", password=password) == user
    assert f"Demo admin: http://127.0.0.1:8000/  user: admin  password: {password}\n" in output


def test_ensure_demo_admin_password_file_is_private(demo_settings, tmp_path):
    run_ensure_demo_admin()

    mode = (tmp_path / "keys" / "demo_admin_password").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_ensure_demo_admin_second_run_reprints_login_without_new_user(demo_settings, tmp_path):
    first = run_ensure_demo_admin()

    second = run_ensure_demo_admin()

    password = stored_password(tmp_path)
    login_line = f"Demo admin: http://127.0.0.1:8000/  user: admin  password: {password}\n"
    assert login_line in first
    assert second == login_line
    assert get_user_model().objects.filter(username="admin").count() == 1
    assert authenticate(sign_in_request(), username="admin", password=password) is not None


def test_ensure_demo_admin_password_is_random_per_installation(demo_settings, tmp_path):
    run_ensure_demo_admin()
    first_password = stored_password(tmp_path)
    get_user_model().objects.filter(username="admin").delete()
    (tmp_path / "keys" / "demo_admin_password").unlink()

    run_ensure_demo_admin()

    assert stored_password(tmp_path) != first_password
    assert len(stored_password(tmp_path)) >= 16


def test_ensure_demo_admin_database_reset_reuses_stored_password(demo_settings, tmp_path):
    run_ensure_demo_admin()
    password = stored_password(tmp_path)
    get_user_model().objects.filter(username="admin").delete()

    output = run_ensure_demo_admin()

    assert f"password: {password}\n" in output
    assert authenticate(sign_in_request(), username="admin", password=password) is not None


def test_ensure_demo_admin_changed_password_is_not_shown(demo_settings, tmp_path):
    run_ensure_demo_admin()
    password = stored_password(tmp_path)
    user = get_user_model().objects.get(username="admin")
    user.set_password("changed-by-the-operator")
    user.save()

    output = run_ensure_demo_admin()

    assert password not in output
    assert "Demo admin:" not in output
    assert "python manage.py changepassword admin" in output
    assert (
        authenticate(sign_in_request(), username="admin", password="changed-by-the-operator")
        == user
    )


def test_ensure_demo_admin_missing_password_file_is_not_guessed(demo_settings, tmp_path):
    run_ensure_demo_admin()
    (tmp_path / "keys" / "demo_admin_password").unlink()

    output = run_ensure_demo_admin()

    assert "Demo admin:" not in output
    assert "changepassword admin" in output
    assert (tmp_path / "keys" / "demo_admin_password").exists() is False
    assert get_user_model().objects.filter(username="admin").count() == 1


def test_ensure_demo_admin_url_option_is_printed(demo_settings, tmp_path):
    output = run_ensure_demo_admin("--url", "http://127.0.0.1:8123/")

    password = stored_password(tmp_path)
    assert f"Demo admin: http://127.0.0.1:8123/  user: admin  password: {password}\n" in output


def test_ensure_demo_admin_without_debug_refuses(settings, tmp_path):
    settings.DEBUG = False
    settings.VAR_DIR = tmp_path

    with pytest.raises(CommandError, match="DEBUG=true"):
        run_ensure_demo_admin()

    assert get_user_model().objects.filter(username="admin").exists() is False
    assert (tmp_path / "keys").exists() is False


def test_ensure_demo_admin_without_debug_and_force_creates_user(settings, tmp_path):
    settings.DEBUG = False
    settings.VAR_DIR = tmp_path

    output = run_ensure_demo_admin("--force")

    password = stored_password(tmp_path)
    assert f"password: {password}\n" in output
    assert authenticate(sign_in_request(), username="admin", password=password) is not None


def teams() -> list[tuple[str, list[str]]]:
    return [
        (group.name, sorted(group.user_set.values_list("username", flat=True)))
        for group in Group.objects.exclude(name__in=ROLE_NAMES).order_by("name")
    ]


def test_ensure_demo_admin_first_run_creates_the_team_once(demo_settings, tmp_path):
    first = run_ensure_demo_admin()

    second = run_ensure_demo_admin()

    password = stored_password(tmp_path)
    assert teams() == [("Standard", ["admin"])]
    assert "Created the team 'Standard' with the demo administrator 'admin' in it." in first
    assert second == f"Demo admin: http://127.0.0.1:8000/  user: admin  password: {password}\n"
    entries = LogEntry.objects.filter(category="users")
    assert [(e.audit_action, e.object_label, e.changes) for e in entries] == [
        ("created", "Standard", {"name": [None, "Standard"], "members": [None, ["admin"]]})
    ]
    assert all(password not in str(e.changes) + str(e.params) for e in LogEntry.objects.all())


def test_ensure_demo_admin_english_installation_names_the_team_default(demo_settings):
    demo_settings.LANGUAGE_CODE = "en"

    run_ensure_demo_admin()

    assert teams() == [("Default", ["admin"])]


def test_ensure_demo_admin_existing_team_is_left_alone(demo_settings):
    Group.objects.create(name="Labor Nord")

    output = run_ensure_demo_admin()

    assert teams() == [("Labor Nord", [])]
    assert "Created the team" not in output


def test_ensure_demo_admin_existing_admin_without_team_joins_the_new_team(demo_settings):
    run_ensure_demo_admin()
    Group.objects.exclude(name__in=ROLE_NAMES).delete()

    output = run_ensure_demo_admin()

    assert teams() == [("Standard", ["admin"])]
    assert "Created the team 'Standard'" in output
    assert "Demo admin:" in output


def test_ensure_demo_admin_changed_password_still_gets_the_team(demo_settings):
    run_ensure_demo_admin()
    Group.objects.exclude(name__in=ROLE_NAMES).delete()
    user = get_user_model().objects.get(username="admin")
    user.set_password("changed-by-the-operator")
    user.save()

    output = run_ensure_demo_admin()

    assert teams() == [("Standard", ["admin"])]
    assert "Demo admin:" not in output
