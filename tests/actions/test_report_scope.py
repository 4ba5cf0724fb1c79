"""An action's report scope for addresses that belong to no customer or user: what each
choice sends, what is refused and why, the migration of existing actions, and text-only
templates."""

import datetime as dt
import importlib
import io

import openpyxl
import pytest
import time_machine
from django.apps import apps
from django.core.exceptions import ValidationError
from django.urls import reverse

from actions import runs, services
from actions.models import Action, ReportScope
from calmail.common.roles import ADMINISTRATOR
from mailbox.models import OutboxMessage
from maillog.models import LogEntry
from tests.actions.conftest import berlin
from tests.factories import (
    CustomerFactory,
    DistributionListFactory,
    InstrumentFactory,
    MailTemplateFactory,
    SmtpConfigurationFactory,
    SystemAddressFactory,
    UserFactory,
)

NOW = berlin(2026, 3, 2, 9)
TODAY = NOW.date()

NO_REPORT = "There is no report for this recipient (report scope: no report)."


@pytest.fixture(autouse=True)
def frozen():
    # Due dates and the run's day derive from now.
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def customers(db):
    made = []
    for number, count in (("A-1", 2), ("B-1", 1), ("C-1", 1)):
        customer = CustomerFactory(number=number, name=f"Kunde {number}")
        for n in range(count):
            InstrumentFactory(
                inventory_number=f"{number}-{n}",
                customer=customer,
                last_calibration=TODAY - dt.timedelta(days=400),
            )
        made.append(customer)
    return made


@pytest.fixture
def system(db):
    return SystemAddressFactory(name="Labor", email="labor@calserver.example")


@pytest.fixture
def partner_list(db):
    return DistributionListFactory(name="Partner", addresses=["extra@partner.example"])


def run(action):
    made = runs.action_run_now(action=action)
    runs.run_execute(run_id=made.pk)
    made.refresh_from_db()
    return made


def mails_by_address(action):
    return {mail.to[0]: mail for mail in OutboxMessage.objects.filter(action=action)}


def excel_numbers(mail):
    attachment = mail.attachments.get()
    with attachment.file.open("rb") as handle:
        sheet = openpyxl.load_workbook(io.BytesIO(handle.read())).active
    return sorted(row[0] for row in sheet.iter_rows(min_row=2, values_only=True))


# --- what each choice sends -------------------------------------------------------------


def test_no_report_skips_other_addresses_when_attachments_are_required(
    make_action, customers, system, partner_list
):
    action = make_action(
        recipients=[f"system:{system.pk}", "info@firma.example", f"list:{partner_list.pk}"],
        report_scope=ReportScope.NONE,
    )

    done = run(action)

    assert (done.queued_count, done.skipped_count) == (0, 3)
    assert [(s["recipient"], s["reason"]) for s in done.skipped] == [
        (email, f"not sent without an attachment: {NO_REPORT}")
        for email in ("labor@calserver.example", "info@firma.example", "extra@partner.example")
    ]


def test_no_report_sends_without_attachment_when_the_action_allows(
    make_action, customers, system, partner_list
):
    template = MailTemplateFactory(empty_attachment_allowed=True)
    action = make_action(
        template=template,
        recipients=[f"system:{system.pk}", "info@firma.example", f"list:{partner_list.pk}"],
        report_scope=ReportScope.NONE,
        send_without_attachments=True,
    )

    done = run(action)

    mails = mails_by_address(action)
    assert done.queued_count == 3
    # No report even though the template attaches empty ones: there is none for them.
    assert {email: mail.attachment_count for email, mail in mails.items()} == {
        "labor@calserver.example": 0,
        "info@firma.example": 0,
        "extra@partner.example": 0,
    }
    assert {email: mail.recipient_owner for email, mail in mails.items()} == {
        "labor@calserver.example": "Labor · Report: no report",
        "info@firma.example": "info@firma.example · Report: no report",
        "extra@partner.example": "Partner · Report: no report",
    }
    assert mails["info@firma.example"].parameters["scope"] == "none"
    assert mails["info@firma.example"].parameters["report_scope"] == "no report"
    assert mails["info@firma.example"].parameters["rows"] == 0


def test_chosen_customers_give_other_addresses_only_their_rows(
    make_action, customers, system, partner_list
):
    first, _second, third = customers
    action = make_action(
        recipients=[f"system:{system.pk}", "info@firma.example", f"list:{partner_list.pk}"],
        report_scope=ReportScope.CUSTOMERS,
    )
    action.report_scope_customers.set([first])

    done = run(action)

    mails = mails_by_address(action)
    assert done.queued_count == 3
    assert {email: excel_numbers(mail) for email, mail in mails.items()} == {
        "labor@calserver.example": ["A-1-0", "A-1-1"],
        "info@firma.example": ["A-1-0", "A-1-1"],
        "extra@partner.example": ["A-1-0", "A-1-1"],
    }
    typed = mails["info@firma.example"]
    assert typed.recipient_owner == "info@firma.example · Report: chosen customers: A-1 · Kunde A-1"
    assert (typed.parameters["scope"], typed.parameters["report_scope"]) == (
        f"customers:{first.pk}",
        "chosen customers: A-1 · Kunde A-1",
    )

    action.report_scope_customers.add(third)
    run(action)
    latest = OutboxMessage.objects.filter(action=action, to=["info@firma.example"]).latest("pk")
    assert excel_numbers(latest) == ["A-1-0", "A-1-1", "C-1-0"]


def test_all_customers_reach_system_addresses_only(make_action, customers, system, partner_list):
    administrator = UserFactory(
        username="chefin", email="chefin@calserver.example", roles=[ADMINISTRATOR]
    )
    InstrumentFactory(
        inventory_number="HERS",
        customer=customers[1],
        responsible=administrator,
        last_calibration=TODAY - dt.timedelta(days=400),
    )
    # Stored directly: the services refuse this selection, a list may gain addresses later.
    action = make_action(
        recipients=[
            f"system:{system.pk}",
            "info@firma.example",
            f"list:{partner_list.pk}",
            f"user:{administrator.pk}",
        ],
        report_scope=ReportScope.ALL,
        send_without_attachments=True,
    )

    run(action)

    mails = mails_by_address(action)
    assert excel_numbers(mails["labor@calserver.example"]) == [
        "A-1-0",
        "A-1-1",
        "B-1-0",
        "C-1-0",
        "HERS",
    ]
    assert mails["labor@calserver.example"].recipient_owner == (
        "Labor · Report: all customers (internal)"
    )
    assert mails["info@firma.example"].attachment_count == 0
    assert mails["extra@partner.example"].attachment_count == 0
    assert mails["info@firma.example"].parameters["scope"] == "none"
    # A user named directly gets their own records, administrator or not.
    assert excel_numbers(mails["chefin@calserver.example"]) == ["HERS"]
    assert mails["chefin@calserver.example"].recipient_owner == "chefin"


def test_customers_and_users_keep_their_own_report_whatever_the_scope(make_action, customers):
    first = customers[0]
    action = make_action(recipients=[f"customer:{first.pk}"], report_scope=ReportScope.ALL)

    run(action)

    (mail,) = OutboxMessage.objects.filter(action=action)
    assert excel_numbers(mail) == ["A-1-0", "A-1-1"]
    assert mail.recipient_owner == "A-1 · Kunde A-1"
    assert mail.parameters["report_scope"] == "the customer's records"


# --- text-only templates --------------------------------------------------------------------


@pytest.mark.parametrize("report", ["instruments_due", ""])
def test_template_without_attachment_sends_whatever_the_switch(make_action, customers, report):
    template = MailTemplateFactory(add_attachment="none", report=report)
    action = make_action(
        template=template,
        recipients=["info@firma.example", f"customer:{customers[0].pk}"],
        send_without_attachments=False,
    )

    done = run(action)

    assert (done.queued_count, done.skipped_count) == (2, 0)
    assert sorted(OutboxMessage.objects.values_list("attachment_count", flat=True)) == [0, 0]


# --- refusals -------------------------------------------------------------------------------


def test_refusal_all_customers_for_typed_addresses_names_them(admin, system):
    errors = services.report_scope_refusal(
        report_scope=ReportScope.ALL,
        customers=[],
        recipients=[f"system:{system.pk}", "info@firma.example", "Max <max@firma.example>"],
        user=admin,
    )

    assert errors == {
        "report_scope": [
            "“All customers (internal)” may only go to system addresses (users and customers "
            "always get their own records), but the typed address info@firma.example, the "
            "typed address max@firma.example would receive every customer's records. Remove "
            "them, or choose “no report” or chosen customers."
        ]
    }


def test_refusal_all_customers_for_list_with_extra_addresses(admin, partner_list):
    plain = DistributionListFactory(name="Nur Kunden", customers=[CustomerFactory()])

    errors = services.report_scope_refusal(
        report_scope=ReportScope.ALL,
        customers=[],
        recipients=[f"list:{partner_list.pk}", f"list:{plain.pk}"],
        user=admin,
    )

    assert list(errors) == ["report_scope"]
    assert "the extra addresses of the distribution list “Partner”" in errors["report_scope"][0]
    assert "Nur Kunden" not in errors["report_scope"][0]


def test_refusal_all_customers_allowed_for_system_addresses_of_an_administrator(admin, system):
    assert (
        services.report_scope_refusal(
            report_scope=ReportScope.ALL,
            customers=[],
            recipients=[f"system:{system.pk}", "customer:1", "user:1"],
            user=admin,
        )
        == {}
    )


def test_refusal_all_customers_only_chosen_by_administrators(power_user, system):
    refused = services.report_scope_refusal(
        report_scope=ReportScope.ALL,
        customers=[],
        recipients=[f"system:{system.pk}"],
        user=power_user,
    )
    kept = services.report_scope_refusal(
        report_scope=ReportScope.ALL,
        customers=[],
        recipients=[f"system:{system.pk}"],
        user=power_user,
        previous=ReportScope.ALL,
    )

    assert refused == {
        "report_scope": [
            "Only administrators may choose “all customers (internal)”: the report then "
            "holds every customer's records."
        ]
    }
    assert kept == {}


def test_refusal_chosen_customers_need_a_customer(db):
    assert services.report_scope_refusal(
        report_scope=ReportScope.CUSTOMERS, customers=[], recipients=["info@firma.example"]
    ) == {
        "report_scope_customers": [
            "Choose at least one customer: the report covers the chosen customers' records."
        ]
    }


def service_values(**values):
    return {
        "description": "Bericht",
        "days": [1],
        "weekdays": [],
        "months": [],
        "time_of_day": dt.time(7),
        "start": berlin(2026, 1, 1),
        "end": None,
        "group": None,
        "published": True,
        "send_without_attachments": False,
        "template": MailTemplateFactory(),
        "smtp_configuration": SmtpConfigurationFactory(),
        **values,
    }


def test_service_refuses_and_stores_the_report_scope(admin, customers, system):
    with pytest.raises(ValidationError) as refused:
        services.action_create(
            values=service_values(recipients=["info@firma.example"], report_scope=ReportScope.ALL),
            user=admin,
        )
    assert list(refused.value.message_dict) == ["report_scope"]

    action = services.action_create(
        values=service_values(
            recipients=["info@firma.example"],
            report_scope=ReportScope.CUSTOMERS,
            report_scope_customers=[customers[0], customers[2]],
        ),
        user=admin,
    )
    assert set(action.report_scope_customers.all()) == {customers[0], customers[2]}

    # Another scope forgets the customers, so they do not come back unseen.
    services.action_update(
        action=action,
        values={"report_scope": ReportScope.NONE, "report_scope_customers": [customers[0]]},
        user=admin,
    )
    assert (action.report_scope, list(action.report_scope_customers.all())) == ("none", [])


def test_duplicate_keeps_report_scope_and_customers(admin, customers):
    action = services.action_create(
        values=service_values(
            recipients=["info@firma.example"],
            report_scope=ReportScope.CUSTOMERS,
            report_scope_customers=[customers[1]],
        ),
        user=admin,
    )

    copy = services.action_duplicate(action=action)

    assert (copy.report_scope, list(copy.report_scope_customers.all())) == (
        "customers",
        [customers[1]],
    )


def form_data(**overrides):
    data = {
        "description": "Bericht",
        "days": ["1"],
        "time_of_day": "07:00",
        "start": "2026-01-01T00:00",
        "recipients": "info@firma.example",
        "template": MailTemplateFactory().pk,
        "smtp_configuration": SmtpConfigurationFactory().pk,
        "group": "",
        "published": "on",
    }
    data.update(overrides)
    return data


def test_form_refuses_all_customers_for_a_typed_address(client_for, admin):
    client = client_for(admin)
    client.post("/i18n/setlang/", {"language": "en"})

    response = client.post(reverse("actions:create"), form_data(report_scope="all"))

    assert response.status_code == 200
    assert Action.objects.count() == 0
    errors = response.context["form"].errors
    assert list(errors) == ["report_scope"]
    assert "the typed address info@firma.example" in errors["report_scope"][0]
    assert "may only go to system addresses" in response.content.decode()


def test_form_refuses_chosen_customers_without_customer(client_for, admin):
    client = client_for(admin)

    response = client.post(reverse("actions:create"), form_data(report_scope="customers"))

    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["report_scope_customers"]
    assert Action.objects.count() == 0


def test_form_stores_chosen_customers_and_explains_the_switches(client_for, admin, customers):
    client = client_for(admin)
    client.post("/i18n/setlang/", {"language": "en"})

    page = client.get(reverse("actions:create")).content.decode()
    response = client.post(
        reverse("actions:create"),
        form_data(report_scope="customers", report_scope_customers=[customers[1].pk]),
    )

    action = Action.objects.get()
    assert response.status_code == 302
    assert (action.report_scope, list(action.report_scope_customers.all())) == (
        "customers",
        [customers[1]],
    )
    assert "templates without any attachment always send" in page
    assert "Report for other addresses" in page
    assert "B-1 · Kunde B-1" in page
    # The switch follows the template it depends on.
    assert page.index('name="template"') < page.index('name="send_without_attachments"')


# --- migration of existing actions -----------------------------------------------------------


def test_migration_keeps_all_for_system_addresses_only_and_logs_each_change(
    make_action, system, partner_list, customers
):
    migration = importlib.import_module("actions.migrations.0006_action_report_scope")
    plain_list = DistributionListFactory(name="Nur Kunden", customers=[customers[0]])
    only_system = make_action(description="Nur System", recipients=[f"system:{system.pk}"])
    mixed = make_action(
        description="Gemischt", recipients=[f"system:{system.pk}", "info@firma.example"]
    )
    with_list = make_action(description="Mit Liste", recipients=[f"list:{partner_list.pk}"])
    untouched = make_action(
        description="Nur Kunden",
        recipients=[f"customer:{customers[0].pk}", f"list:{plain_list.pk}"],
    )

    migration.decide_report_scopes(apps, None)

    scopes = dict(Action.objects.values_list("description", "report_scope"))
    assert scopes == {
        "Nur System": "all",
        "Gemischt": "none",
        "Mit Liste": "none",
        "Nur Kunden": "none",
    }
    entries = {entry.object_id: entry for entry in LogEntry.objects.filter(category="action")}
    assert set(entries) == {only_system.pk, mixed.pk, with_list.pk}
    assert untouched.pk not in entries
    assert entries[only_system.pk].level == "info"
    assert entries[only_system.pk].rendered("en") == (
        "Report scope of Nur System set to “all customers (internal)”: "
        "Labor <labor@calserver.example> received every customer's records so far and, as "
        "system addresses, still may."
    )
    assert entries[mixed.pk].level == "warning"
    assert entries[mixed.pk].rendered("en") == (
        "Report scope of Gemischt set to “no report”: Labor <labor@calserver.example>, "
        "info@firma.example received every customer's records so far, which only system "
        "addresses may, so none of them gets a report now. Choose customers on the action "
        "if they need one."
    )
    assert entries[with_list.pk].params["recipients"] == "Partner"
    assert entries[mixed.pk].group_id == mixed.group_id
    assert "Gemischt" in entries[mixed.pk].search_text
