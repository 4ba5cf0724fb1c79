"""An action run with an audience, its figures in the run history, and the preview."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from django.utils import translation

from actions import runs, services
from actions.models import ActionRun, RunStatus
from inventory.recipients import Skipped
from mailbox.models import OutboxMessage
from tests.factories import CustomerFactory, InstrumentFactory, MailTemplateFactory, UserFactory

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 3, 2)
MATCHING = "audience:matching_customers"
RESPONSIBLE = "audience:responsible_users"
ACTIVE = "audience:active_customers"


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def overdue(customer, count=1, **values):
    for _index in range(count):
        InstrumentFactory(
            customer=customer, last_calibration=TODAY - dt.timedelta(days=400), **values
        )


@pytest.fixture
def three(db):
    """Customer 6001 with two overdue instruments, 6002 with one, 6003 with none due."""
    customers = [
        CustomerFactory(number=number, emails=[f"labor@k{number}.example"])
        for number in ("6001", "6002", "6003")
    ]
    overdue(customers[0], count=2)
    overdue(customers[1])
    InstrumentFactory(customer=customers[2], last_calibration=TODAY - dt.timedelta(days=30))
    return customers


def execute(action):
    run = runs.action_run_now(action=action)
    runs.run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def test_run_mails_customers_with_matching_records_each_their_rows(make_action, three):
    action = make_action(recipients=[MATCHING])

    run = execute(action)

    mails = OutboxMessage.objects.filter(action=action).order_by("recipient")
    assert [(m.recipient, m.parameters["rows"], m.parameters["scope"]) for m in mails] == [
        ("labor@k6001.example", 2, f"customer:{three[0].pk}"),
        ("labor@k6002.example", 1, f"customer:{three[1].pk}"),
    ]
    assert (run.queued_count, run.skipped_count) == (2, 0)
    assert run.audience == {
        "mails": 2,
        "recipients": [
            {"email": "labor@k6001.example", "owner": three[0].label, "rows": 2},
            {"email": "labor@k6002.example", "owner": three[1].label, "rows": 1},
        ],
        "skipped": 0,
    }


def test_run_resolves_the_audience_when_it_runs_not_when_saved(make_action, three):
    action = make_action(recipients=[MATCHING])
    execute(action)
    overdue(three[2])

    second = execute(action)

    assert second.audience["mails"] == 3
    assert action.recipients == [MATCHING]


def test_run_mails_a_customer_named_explicitly_and_in_the_audience_once(make_action, three):
    action = make_action(recipients=[f"customer:{three[1].pk}", MATCHING])

    run = execute(action)

    assert sorted(
        OutboxMessage.objects.filter(action=action).values_list("recipient", flat=True)
    ) == [
        "labor@k6001.example",
        "labor@k6002.example",
    ]
    assert [entry["email"] for entry in run.audience["recipients"]] == [
        "labor@k6002.example",
        "labor@k6001.example",
    ]


def test_an_address_two_customers_share_gets_each_customers_rows_in_its_own_mail(
    make_action, three
):
    # A service provider looking after both labs: one contact address, two customers.
    shared = CustomerFactory(number="6005", emails=["labor@k6001.example"])
    overdue(shared, count=3)
    action = make_action(recipients=[MATCHING])

    run = execute(action)

    mails = OutboxMessage.objects.filter(action=action, recipient="labor@k6001.example")
    assert sorted((m.parameters["scope"], m.parameters["rows"]) for m in mails) == sorted(
        [(f"customer:{three[0].pk}", 2), (f"customer:{shared.pk}", 3)]
    )
    assert run.queued_count == 3
    # The same run again (a task retried after a crash): the per-customer keys make no
    # second copy of either mail.
    ActionRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    assert runs.run_execute(run_id=run.pk) is not None
    assert OutboxMessage.objects.filter(action=action).count() == 3


def test_run_records_why_an_audience_member_got_no_mail(make_action, three):
    silent = CustomerFactory(number="6004", emails=[])
    overdue(silent)
    action = make_action(recipients=[MATCHING])

    run = execute(action)

    assert run.skipped == [
        {
            "recipient": silent.label,
            "reason": "the customer has no contact e-mail address",
            # Kept as its msgid too: the run history shows it in its reader's language.
            "reason_text": {
                "msgid": "the customer has no contact e-mail address",
                "params": {},
            },
        }
    ]
    assert (run.queued_count, run.skipped_count, run.audience["skipped"]) == (2, 1, 1)


def test_run_with_audience_of_a_template_without_report_records_the_reason(make_action, three):
    template = MailTemplateFactory(report="", add_attachment="none")
    action = make_action(template=template, recipients=[MATCHING, f"customer:{three[2].pk}"])

    run = execute(action)

    assert [(s["recipient"], s["reason"]) for s in run.skipped] == [
        ("Customers with matching records", "the template has no report, so no records can match")
    ]
    assert run.audience == {
        "mails": 1,
        "recipients": [{"email": "labor@k6003.example", "owner": three[2].label, "rows": None}],
        "skipped": 1,
    }


def test_run_mails_responsible_users_their_rows(make_action, three):
    erika = UserFactory(username="erika")
    overdue(three[2], responsible=erika)
    overdue(three[0], responsible=erika)
    action = make_action(recipients=[RESPONSIBLE])

    run = execute(action)

    mail = OutboxMessage.objects.get(action=action)
    assert (mail.recipient, mail.parameters["rows"], mail.parameters["scope"]) == (
        "erika@example.com",
        2,
        f"user:{erika.pk}",
    )
    assert run.audience["mails"] == 1


def test_run_history_shows_the_audience_figures(client_for, admin, make_action, three):
    action = make_action(recipients=[MATCHING])
    execute(action)
    client = client_for(admin)
    client.post("/i18n/setlang/", {"language": "en"})

    response = client.get(reverse("actions:runs", args=[action.pk]))

    page = response.content.decode()
    assert "2 mails" in page
    assert f"labor@k6001.example ({three[0].label}): 2 rows" in page
    assert f"labor@k6002.example ({three[1].label}): 1 row" in page
    assert [c.header for c in response.context["table"].columns][-1] == "Audience"
    assert ActionRun.objects.get(action=action).audience["mails"] == 2


def test_run_history_shows_skip_reasons_in_its_readers_language(
    client_for, admin, make_action, three
):
    silent = CustomerFactory(number="6004", emails=[])
    overdue(silent)
    action = make_action(recipients=[MATCHING])
    with translation.override("de"):
        run = execute(action)
    client = client_for(admin)
    client.post("/i18n/setlang/", {"language": "en"})

    page = client.get(reverse("actions:runs", args=[action.pk])).content.decode()

    # Written by a German run, read in English.
    assert run.skipped[0]["reason"] != "the customer has no contact e-mail address"
    assert f"{silent.label}: the customer has no contact e-mail address" in page


# --- preview -----------------------------------------------------------------------------


def test_preview_gives_the_figures_the_run_gives(make_action, three):
    template = MailTemplateFactory()
    preview = services.audience_preview(
        template=template, recipients=[MATCHING], send_without_attachments=False, today=TODAY
    )
    run = execute(make_action(template=template, recipients=[MATCHING]))

    assert preview == services.AudiencePreview(
        mails=2,
        recipients=[
            services.AudienceMember("labor@k6001.example", three[0].label, 2),
            services.AudienceMember("labor@k6002.example", three[1].label, 1),
        ],
        skipped=[],
    )
    assert [
        {"email": m.email, "owner": m.owner, "rows": m.rows} for m in preview.recipients
    ] == run.audience["recipients"]


def test_preview_skips_empty_reports_like_the_run(make_action, three):
    template = MailTemplateFactory()

    strict = services.audience_preview(
        template=template, recipients=[ACTIVE], send_without_attachments=False, today=TODAY
    )
    lenient = services.audience_preview(
        template=template, recipients=[ACTIVE], send_without_attachments=True, today=TODAY
    )
    run = execute(make_action(template=template, recipients=[ACTIVE]))

    reason = (
        "not sent without an attachment: "
        "The report is empty and the template attaches no empty report."
    )
    assert strict.mails == run.queued_count == 2
    assert strict.skipped == [
        Skipped(source=f"customer:{three[2].pk}", label="labor@k6003.example", reason=reason)
    ]
    assert [(s["recipient"], s["reason"]) for s in run.skipped] == [("labor@k6003.example", reason)]
    assert (lenient.mails, [m.rows for m in lenient.recipients]) == (3, [2, 1, 0])


def test_preview_lists_the_first_recipients_only(three):
    preview = services.audience_preview(
        template=MailTemplateFactory(),
        recipients=[ACTIVE],
        send_without_attachments=True,
        today=TODAY,
        limit=2,
    )

    assert (preview.mails, [m.email for m in preview.recipients]) == (
        3,
        ["labor@k6001.example", "labor@k6002.example"],
    )


def test_preview_of_a_template_without_report_has_no_rows(three):
    preview = services.audience_preview(
        template=MailTemplateFactory(report="", add_attachment="none"),
        recipients=[MATCHING, ACTIVE],
        send_without_attachments=False,
        today=TODAY,
    )

    assert (preview.mails, {m.rows for m in preview.recipients}) == (3, {None})
    assert [s.reason for s in preview.skipped] == [
        "the template has no report, so no records can match"
    ]


def test_preview_takes_a_few_queries_whatever_the_audience(db, django_assert_max_num_queries):
    erika = UserFactory(username="erika")
    for number in range(50):
        customer = CustomerFactory(number=f"7{number:04d}", emails=[f"a@k{number}.example"])
        overdue(customer, count=1 + number % 3, responsible=erika)
    template = MailTemplateFactory()

    with django_assert_max_num_queries(10):
        preview = services.audience_preview(
            template=template,
            recipients=[MATCHING, RESPONSIBLE, ACTIVE, "ops@example.com"],
            send_without_attachments=False,
            today=TODAY,
        )

    assert preview.mails == 51
    assert [m.rows for m in preview.recipients[:3]] == [1, 2, 3]
    assert len(preview.recipients) == 20
