import stat
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


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
    assert list(user.groups.values_list("name", flat=True)) == ["Administrator"]
    assert authenticate(username="admin", password=password) == user
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
    assert authenticate(username="admin", password=password) is not None


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
    assert authenticate(username="admin", password=password) is not None


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
    assert authenticate(username="admin", password="changed-by-the-operator") == user


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
    assert authenticate(username="admin", password=password) is not None
