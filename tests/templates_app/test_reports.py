import datetime

import pytest

from inventory.selectors import Scope
from templates_app.reports import ReportNotFound, get, register, reports_for_type, unregister
from templates_app.reports.registry import Column, Report, TemplateType
from tests.factories import (
    CustomerFactory,
    InstrumentFactory,
    LocationFactory,
    SupportTicketFactory,
    UserFactory,
)
from tests.templates_app.conftest import TODAY, due_in


def numbers(report) -> list[str]:
    return [row["inventory_number"] for row in report.rows]


def build(key, *, scope=None, due_filter="all", window_days=30, today=TODAY):
    return get(key).build(
        scope=scope or Scope.all(), due_filter=due_filter, window_days=window_days, today=today
    )


# --- registry -------------------------------------------------------------------------------


def test_registry_has_a_report_per_type():
    assert [report.key for report in reports_for_type(TemplateType.INVENTORY)] == [
        "instruments_due"
    ]
    assert [report.key for report in reports_for_type(TemplateType.LOCATION)] == [
        "instruments_by_location"
    ]
    assert [report.key for report in reports_for_type(TemplateType.SUPPORT)] == ["open_tickets"]


def test_registry_takes_an_installations_own_provider():
    class Calibrations(Report):
        key = "test_calibrations"
        template_type = TemplateType.INVENTORY
        title = "Kalibrierungen"
        columns = (Column("number", "Nummer"),)

        def build_rows(self, *, scope, due_filter, window_days, today):
            yield {"number": f"{scope}/{due_filter}/{window_days}/{today}"}

    register(Calibrations())
    try:
        report = build("test_calibrations", due_filter="due", window_days=7)

        assert report.rows == [{"number": "all/due/7/2025-03-03"}]
        assert "test_calibrations" in [r.key for r in reports_for_type("inventory")]
    finally:
        unregister("test_calibrations")

    with pytest.raises(ReportNotFound):
        get("test_calibrations")


def test_registry_refuses_a_second_provider_with_the_same_key():
    with pytest.raises(ValueError, match="already registered"):
        register(get("instruments_due").__class__())


# --- due filter boundaries ------------------------------------------------------------------


@pytest.fixture
def boundary_instruments(db):
    customer = CustomerFactory()
    days = {
        "yesterday": -1,
        "today": 0,
        "window-edge": 30,
        "after-window": 31,
        "long-overdue": -400,
    }
    for name, offset in days.items():
        InstrumentFactory(inventory_number=name, customer=customer, **due_in(offset))
    InstrumentFactory(inventory_number="never-calibrated", customer=customer, last_calibration=None)
    return customer


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("due_filter", "expected"),
    [
        ("due", ["today", "window-edge"]),
        ("overdue", ["long-overdue", "yesterday"]),
        ("due_overdue", ["long-overdue", "yesterday", "today", "window-edge"]),
        (
            "all",
            [
                "long-overdue",
                "yesterday",
                "today",
                "window-edge",
                "after-window",
                "never-calibrated",
            ],
        ),
    ],
)
def test_instruments_due_filter_boundaries(boundary_instruments, due_filter, expected):
    report = build("instruments_due", due_filter=due_filter)

    assert numbers(report) == expected


@pytest.mark.django_db
def test_instruments_due_state_is_written_per_row(boundary_instruments):
    report = build("instruments_due")

    assert {row["inventory_number"]: row["due_state"] for row in report.rows} == {
        "long-overdue": "overdue",
        "yesterday": "overdue",
        "today": "due",
        "window-edge": "due",
        "after-window": "",
        "never-calibrated": "",
    }


@pytest.mark.django_db
def test_instruments_due_window_of_zero_days_is_today_only(boundary_instruments):
    report = build("instruments_due", due_filter="due", window_days=0)

    assert numbers(report) == ["today"]


@pytest.mark.django_db
def test_instruments_due_on_leap_day():
    leap_day = datetime.date(2028, 2, 29)
    # Calibrated on 29 February 2024 with a 48-month interval: due on 29 February 2028.
    InstrumentFactory(
        inventory_number="leap",
        last_calibration=datetime.date(2024, 2, 29),
        calibration_interval_months=48,
    )
    # Calibrated on 28 February 2027 with 12 months: due 28 February 2028, overdue on the 29th.
    InstrumentFactory(
        inventory_number="day-before",
        last_calibration=datetime.date(2027, 2, 28),
        calibration_interval_months=12,
    )
    # 1 March 2028 is the last day of a one-day window starting on the leap day.
    InstrumentFactory(
        inventory_number="day-after",
        last_calibration=datetime.date(2027, 3, 1),
        calibration_interval_months=12,
    )

    due = build("instruments_due", due_filter="due", window_days=1, today=leap_day)
    overdue = build("instruments_due", due_filter="overdue", today=leap_day)

    assert numbers(due) == ["leap", "day-after"]
    assert [row["next_due_date"] for row in due.rows] == [leap_day, datetime.date(2028, 3, 1)]
    assert numbers(overdue) == ["day-before"]


# --- scopes ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_instruments_due_scope_customer_user_and_all():
    technician = UserFactory(username="techniker")
    mine, other = CustomerFactory(number="1001"), CustomerFactory(number="1002")
    InstrumentFactory(inventory_number="A", customer=mine, **due_in(1))
    InstrumentFactory(inventory_number="B", customer=other, responsible=technician, **due_in(2))
    InstrumentFactory(inventory_number="C", customer=other, **due_in(3))

    assert numbers(build("instruments_due", scope=Scope.customer(mine.pk))) == ["A"]
    assert numbers(build("instruments_due", scope=Scope.user(technician.pk))) == ["B"]
    assert numbers(build("instruments_due", scope=Scope.all())) == ["A", "B", "C"]


@pytest.mark.django_db
def test_instruments_due_rows_are_plain_values():
    customer = CustomerFactory(number="1001", name="Muster GmbH")
    location = LocationFactory(name="Prüflabor", customer=customer)
    InstrumentFactory(
        inventory_number="INV-1",
        description="Messschieber",
        manufacturer="Mitutoyo",
        model="500-196",
        serial_number="SN1",
        customer=customer,
        location=location,
        last_calibration=datetime.date(2024, 3, 10),
    )

    report = build("instruments_due", scope=Scope.customer(customer.pk))

    assert report.rows == [
        {
            "inventory_number": "INV-1",
            "description": "Messschieber",
            "manufacturer": "Mitutoyo",
            "model": "500-196",
            "serial_number": "SN1",
            "customer": "1001 · Muster GmbH",
            "location": "Prüflabor",
            "last_calibration": datetime.date(2024, 3, 10),
            "next_due_date": datetime.date(2025, 3, 10),
            "due_state": "due",
        }
    ]
    assert report.headers()[:2] == ["Inventory number", "Description"]


@pytest.mark.django_db
def test_instruments_by_location_groups_rows_by_location():
    technician = UserFactory(username="standortleiter", first_name="Erika", last_name="Muster")
    customer = CustomerFactory()
    north = LocationFactory(name="Werk Nord", customer=customer, responsible=technician)
    south = LocationFactory(name="Werk Süd", customer=customer)
    InstrumentFactory(inventory_number="S1", customer=customer, location=south, **due_in(1))
    InstrumentFactory(inventory_number="N2", customer=customer, location=north, **due_in(5))
    InstrumentFactory(inventory_number="N1", customer=customer, location=north, **due_in(2))
    InstrumentFactory(inventory_number="X", customer=customer, location=None, **due_in(0))

    by_customer = build("instruments_by_location", scope=Scope.customer(customer.pk))
    by_user = build("instruments_by_location", scope=Scope.user(technician.pk))

    assert [(row["location"], row["inventory_number"]) for row in by_customer.rows] == [
        ("Werk Nord", "N1"),
        ("Werk Nord", "N2"),
        ("Werk Süd", "S1"),
        ("(no location)", "X"),
    ]
    assert [row["inventory_number"] for row in by_user.rows] == ["N1", "N2"]
    assert by_user.rows[0]["location_responsible"] == "Erika Muster"


@pytest.mark.django_db
def test_open_tickets_by_scope_and_due_date():
    assignee = UserFactory(username="support")
    customer = CustomerFactory(number="1001", name="Muster GmbH")
    SupportTicketFactory(number="T-late", customer=customer, due_date=TODAY - datetime.timedelta(1))
    SupportTicketFactory(
        number="T-soon",
        customer=customer,
        assignee=assignee,
        due_date=TODAY + datetime.timedelta(3),
    )
    SupportTicketFactory(number="T-closed", customer=customer, status="closed", due_date=TODAY)
    SupportTicketFactory(number="T-other", due_date=TODAY)

    overdue = build("open_tickets", scope=Scope.customer(customer.pk), due_filter="overdue")
    mine = build("open_tickets", scope=Scope.user(assignee.pk))
    everything = build("open_tickets", due_filter="due_overdue")

    assert [row["number"] for row in overdue.rows] == ["T-late"]
    assert [row["number"] for row in mine.rows] == ["T-soon"]
    assert [row["number"] for row in everything.rows] == ["T-late", "T-other", "T-soon"]
    assert overdue.rows[0]["customer"] == "1001 · Muster GmbH"
