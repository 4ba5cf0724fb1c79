import datetime
from io import StringIO

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.utils import timezone

from calmail.common.roles import ROLE_NAMES
from inventory.models import (
    Customer,
    CustomerContact,
    DistributionList,
    Instrument,
    Location,
    SupportTicket,
    SystemAddress,
    UserProfile,
    compute_next_due_date,
)
from inventory.recipients import resolve_selection

pytestmark = pytest.mark.django_db
NOW = datetime.datetime(2026, 3, 10, 9, 0, tzinfo=datetime.UTC)


@pytest.fixture
def demo(settings):
    settings.DEBUG = True
    with time_machine.travel(NOW, tick=False):
        yield


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def snapshot() -> dict:
    return {
        "customers": list(Customer.objects.values_list("number", "name", "language", "city")),
        "contacts": list(
            CustomerContact.objects.order_by("customer__number", "position").values_list(
                "customer__number", "email", "name"
            )
        ),
        "locations": list(
            Location.objects.order_by("customer__number", "name").values_list(
                "customer__number", "name", "responsible__username"
            )
        ),
        "instruments": list(
            Instrument.objects.values_list(
                "inventory_number",
                "description",
                "manufacturer",
                "serial_number",
                "customer__number",
                "location__name",
                "responsible__username",
                "last_calibration",
                "calibration_interval_months",
                "next_due_date",
            )
        ),
        "tickets": list(
            SupportTicket.objects.values_list(
                "number",
                "subject",
                "status",
                "customer__number",
                "assignee__username",
                "created_at",
                "due_date",
            )
        ),
    }


def test_seed_demo_small_run_creates_the_asked_counts(demo):
    output = seed("--customers", "5", "--instruments", "40", "--tickets", "7")

    assert "Seeded 5 customers, 40 instruments and 7 tickets" in output
    assert (
        Customer.objects.count(),
        Instrument.objects.count(),
        SupportTicket.objects.count(),
    ) == (5, 40, 7)
    assert Location.objects.filter(customer__isnull=False).count() >= 5
    assert sorted(DistributionList.objects.values_list("name", flat=True)) == [
        "Kalibrier-Newsletter",
        "Qualitätssicherung",
    ]
    assert sorted(SystemAddress.objects.values_list("name", flat=True)) == [
        "Kalibrierlabor",
        "Service-Hotline",
    ]
    assert UserProfile.objects.count() == 6
    assert set(UserProfile.objects.values_list("language", flat=True)) == {"de", "en"}


def test_seed_demo_defaults_and_second_run_adds_nothing(demo):
    seed()
    before = snapshot()

    output = seed()

    assert (
        Customer.objects.count(),
        Instrument.objects.count(),
        SupportTicket.objects.count(),
    ) == (12, 300, 40)
    assert (
        "Demo data is already there (12 customers, 300 instruments, 40 tickets): nothing added."
        in output
    )
    assert snapshot() == before


def test_seed_demo_is_deterministic_for_a_seed(demo):
    seed("--customers", "6", "--instruments", "60", "--tickets", "10", "--seed", "7")
    first = snapshot()
    for model in (Instrument, SupportTicket, DistributionList, SystemAddress, Customer):
        model.objects.all().delete()
    seed("--customers", "6", "--instruments", "60", "--tickets", "10", "--seed", "7")
    second = snapshot()
    for model in (Instrument, SupportTicket, DistributionList, SystemAddress, Customer):
        model.objects.all().delete()
    seed("--customers", "6", "--instruments", "60", "--tickets", "10", "--seed", "8")

    assert second == first
    assert snapshot()["instruments"] != first["instruments"]


def test_seed_demo_more_adds_a_set_with_new_numbers(demo):
    seed("--customers", "3", "--instruments", "10", "--tickets", "2")

    seed("--customers", "2", "--instruments", "5", "--tickets", "1", "--more")

    assert list(Customer.objects.values_list("number", flat=True)) == [
        "10001",
        "10002",
        "10003",
        "10004",
        "10005",
    ]
    assert Instrument.objects.count() == 15
    assert (
        Instrument.objects.order_by("-inventory_number").first().inventory_number == "INV-0000015"
    )
    assert SupportTicket.objects.count() == 3
    assert DistributionList.objects.count() == 2


def test_seed_demo_due_dates_are_consistent_and_spread(demo):
    seed("--customers", "20", "--instruments", "1000", "--tickets", "0")
    today = timezone.localdate(NOW)  # seed_demo's today: the local date, not NOW's UTC one

    rows = list(
        Instrument.objects.values_list(
            "last_calibration", "calibration_interval_months", "next_due_date"
        )
    )
    dues = [due for _last, _interval, due in rows if due is not None]
    overdue = sum(due < today for due in dues)
    soon = sum(today <= due <= today + datetime.timedelta(days=30) for due in dues)

    assert all(due == compute_next_due_date(last, interval) for last, interval, due in rows)
    assert 40 <= overdue <= 130
    assert 70 <= soon <= 180
    assert len(dues) - overdue - soon > 600


def test_seed_demo_recipients_resolve(demo):
    seed("--customers", "8", "--instruments", "10", "--tickets", "0")
    lists = [f"list:{pk}" for pk in DistributionList.objects.values_list("pk", flat=True)]

    resolution = resolve_selection(lists)

    assert len(resolution) >= 5
    assert resolution.skipped == []
    assert all(recipient.email.endswith(".example") for recipient in resolution)


def test_seed_demo_lists_belong_to_the_default_team(demo, settings):
    settings.LANGUAGE_CODE = "de"

    seed("--customers", "3", "--instruments", "3", "--tickets", "0")

    assert list(Group.objects.exclude(name__in=ROLE_NAMES).values_list("name", flat=True)) == [
        "Standard"
    ]
    assert sorted(DistributionList.objects.values_list("name", "owner_group__name")) == [
        ("Kalibrier-Newsletter", "Standard"),
        ("Qualitätssicherung", "Standard"),
    ]


def test_seed_demo_lists_go_to_the_first_existing_team(demo):
    Group.objects.create(name="Zentrallabor")
    Group.objects.create(name="Außenstelle")

    seed("--customers", "3", "--instruments", "3", "--tickets", "0")

    assert Group.objects.exclude(name__in=ROLE_NAMES).count() == 2
    assert set(DistributionList.objects.values_list("owner_group__name", flat=True)) == {
        "Außenstelle"
    }


def test_seed_demo_after_ensure_demo_admin_uses_its_team(demo, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("ensure_demo_admin", stdout=StringIO())

    seed("--customers", "3", "--instruments", "3", "--tickets", "0")

    team = Group.objects.exclude(name__in=ROLE_NAMES).get()
    assert list(team.user_set.values_list("username", flat=True)) == ["admin"]
    assert set(DistributionList.objects.values_list("owner_group", flat=True)) == {team.pk}


def test_seed_demo_refuses_without_debug(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="runs only with DEBUG=true"):
        seed()

    assert Customer.objects.count() == 0


def test_seed_demo_force_runs_without_debug(settings):
    settings.DEBUG = False

    seed("--customers", "1", "--instruments", "1", "--tickets", "1", "--force")

    assert Instrument.objects.count() == 1


def test_seed_demo_refuses_instruments_without_customers(demo):
    with pytest.raises(CommandError, match="need at least one customer"):
        seed("--customers", "0", "--instruments", "5")
