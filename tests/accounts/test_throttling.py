"""Sign-in throttling (django-axes): per account, per client address, with a cool-off,
administrators unlock, every lockout in the Log."""

import datetime

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from maillog.models import Category, LogEntry
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SECRET = "Geheim-Passwort-4711!"


@pytest.fixture
def paula(db):
    return UserFactory(username="paula", password=SECRET)


def sign_in(client, username, password, **extra):
    return client.post(reverse("login"), {"username": username, "password": password}, **extra)


def signed_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == reverse("home")


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(client, paula, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "paula", "wrong").status_code == 200
    assert sign_in(client, "paula", "wrong").status_code == 429

    response = sign_in(client, "paula", SECRET)

    assert response.status_code == 429
    page = response.content.decode()
    assert "Zu viele fehlgeschlagene Anmeldungen. Versuchen Sie es in 15 Minuten erneut" in page
    assert "_auth_user_id" not in client.session
    entry = LogEntry.objects.get(category=Category.SECURITY, message__startswith="Sign-in as")
    assert entry.rendered("en") == (
        "Sign-in as paula locked for 15 minutes after too many failed attempts"
    )
    assert entry.details == {"network": "127.0.0.0/24"}


def test_the_lock_ends_after_the_cool_off(client, paula, settings):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            sign_in(client, "paula", "wrong")
        assert sign_in(client, "paula", SECRET).status_code == 429

    with time_machine.travel(start + datetime.timedelta(minutes=16), tick=False):
        assert signed_in(sign_in(client, "paula", SECRET))


def test_one_client_address_trying_many_accounts_is_locked(client, paula, settings):
    for number in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, f"guess{number}", "wrong")

    assert sign_in(client, "paula", SECRET).status_code == 429


def test_behind_a_proxy_each_client_address_counts_on_its_own(client, paula, settings):
    settings.CALMAIL_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    attacker = {"HTTP_X_FORWARDED_FOR": "198.51.100.7, 203.0.113.9", "REMOTE_ADDR": "10.0.0.2"}
    colleague = {"HTTP_X_FORWARDED_FOR": "198.51.100.7, 203.0.113.10", "REMOTE_ADDR": "10.0.0.2"}
    for number in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, f"guess{number}", "wrong", **attacker)

    # The forged first entry is the same; the proxy's own (last) entry tells them apart.
    assert sign_in(client, "paula", SECRET, **attacker).status_code == 429
    assert signed_in(sign_in(client, "paula", SECRET, **colleague))
    entry = LogEntry.objects.filter(category=Category.SECURITY).order_by("id").first()
    assert entry.details == {"network": "203.0.113.0/24"}


def test_an_administrator_unlocks_a_user(client, client_for, admin, paula, settings):
    from django.test import Client

    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "paula", "wrong")
    admin_client = client_for(admin)
    users = admin_client.get(reverse("accounts:user_list"), {"sign_in_locked": "yes"})
    assert "gesperrt" in users.content.decode()
    assert reverse("accounts:user_unlock", args=[paula.pk]) in users.content.decode()

    admin_client.post(reverse("accounts:user_unlock", args=[paula.pk]))

    assert signed_in(sign_in(Client(), "paula", SECRET))
    entry = LogEntry.objects.get(category=Category.USERS, object_id=paula.pk)
    assert entry.rendered("en") == "Sign-in of paula unlocked"
    assert entry.actor == admin


def test_unlocked_users_show_no_lock(client_for, admin, paula):
    page = client_for(admin).get(reverse("accounts:user_list"), {"sign_in_locked": "yes"})

    assert "paula" not in page.content.decode().split("<tbody")[1]
