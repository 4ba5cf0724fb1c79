"""Audiences: recipients found when a run resolves the selection (inventory.recipients)."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import ValidationError

from calmail.common.roles import VIEWER
from inventory.recipients import (
    AudienceContext,
    AudienceKind,
    check_selection,
    describe_selection,
    parse_token,
    parse_tokens,
    resolve_selection,
    search_recipients,
    unavailable_references,
)
from inventory.selectors import RecordKind, Scope, count_matching_records
from templates_app.reports.registry import get as get_report
from tests.factories import (
    CustomerFactory,
    InstrumentFactory,
    LocationFactory,
    SupportTicketFactory,
    UserFactory,
)

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 3, 2)
MATCHING = "audience:matching_customers"
RESPONSIBLE = "audience:responsible_users"
ACTIVE = "audience:active_customers"


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def context(kind=RecordKind.INSTRUMENTS, due_filter="due_overdue", window_days=30):
    return AudienceContext(
        report_kind=kind, due_filter=due_filter, window_days=window_days, today=TODAY
    )


def overdue(**values):
    """An instrument due 35 days ago (last calibration 400 days ago, every 12 months)."""
    return InstrumentFactory(last_calibration=TODAY - dt.timedelta(days=400), **values)


def later(**values):
    """An instrument due in about 265 days: no filter but "all" takes it."""
    return InstrumentFactory(last_calibration=TODAY - dt.timedelta(days=100), **values)


def summary(resolution):
    return (
        [(r.email, str(r.scope), r.source) for r in resolution.recipients],
        [(s.source, s.reason) for s in resolution.skipped],
    )


@pytest.fixture
def customers(db):
    """1001 two overdue, 1002 one due soon, 1003 only later, 1004 inactive with an overdue
    one, 1005 no contact with an overdue one, 1006 two contacts and an overdue one."""
    made = {
        "1001": CustomerFactory(number="1001", emails=["a@k1001.example"]),
        "1002": CustomerFactory(number="1002", emails=["a@k1002.example"]),
        "1003": CustomerFactory(number="1003", emails=["a@k1003.example"]),
        "1004": CustomerFactory(number="1004", emails=["a@k1004.example"], is_active=False),
        "1005": CustomerFactory(number="1005", emails=[]),
        "1006": CustomerFactory(number="1006", emails=["a@k1006.example", "b@k1006.example"]),
    }
    overdue(customer=made["1001"])
    overdue(customer=made["1001"])
    InstrumentFactory(
        customer=made["1002"],
        last_calibration=TODAY - dt.timedelta(days=365) + dt.timedelta(days=10),
    )
    later(customer=made["1003"])
    overdue(customer=made["1004"])
    overdue(customer=made["1005"])
    overdue(customer=made["1006"])
    return made


# --- tokens ------------------------------------------------------------------------------


def test_parse_token_reads_each_audience():
    assert [parse_token(f"audience:{kind}").token for kind in AudienceKind] == [
        MATCHING,
        RESPONSIBLE,
        ACTIVE,
    ]


def test_parse_token_unknown_audience_names_the_token():
    with pytest.raises(ValidationError) as error:
        parse_token("audience:everyone")

    assert error.value.messages == ["“audience:everyone” is not a known audience."]


def test_parse_tokens_drops_a_repeated_audience_but_keeps_different_ones():
    items = parse_tokens([MATCHING, ACTIVE, MATCHING, "customer:3"])

    assert [item.token for item in items] == [MATCHING, ACTIVE, "customer:3"]


# --- resolution --------------------------------------------------------------------------


def test_matching_customers_are_active_customers_with_rows_one_recipient_per_contact(customers):
    resolution = resolve_selection([MATCHING], audience=context())

    pk = {number: customer.pk for number, customer in customers.items()}
    assert summary(resolution) == (
        [
            ("a@k1001.example", f"customer:{pk['1001']}", f"customer:{pk['1001']}"),
            ("a@k1002.example", f"customer:{pk['1002']}", f"customer:{pk['1002']}"),
            ("a@k1006.example", f"customer:{pk['1006']}", f"customer:{pk['1006']}"),
            ("b@k1006.example", f"customer:{pk['1006']}", f"customer:{pk['1006']}"),
        ],
        [(f"customer:{pk['1005']}", "the customer has no contact e-mail address")],
    )
    assert {r.address_type for r in resolution} == {"customer"}
    assert resolution.recipients[0].owner == customers["1001"].label


def test_matching_customers_follow_the_due_filter(customers):
    overdue_only = resolve_selection([MATCHING], audience=context(due_filter="overdue"))
    everything = resolve_selection([MATCHING], audience=context(due_filter="all"))

    assert [r.email for r in overdue_only] == [
        "a@k1001.example",
        "a@k1006.example",
        "b@k1006.example",
    ]
    assert [r.email for r in everything] == [
        "a@k1001.example",
        "a@k1002.example",
        "a@k1003.example",
        "a@k1006.example",
        "b@k1006.example",
    ]


def test_active_customers_are_every_active_customer_rows_or_not(customers):
    resolution = resolve_selection([ACTIVE])

    assert [r.email for r in resolution] == [
        "a@k1001.example",
        "a@k1002.example",
        "a@k1003.example",
        "a@k1006.example",
        "b@k1006.example",
    ]
    assert [s.reason for s in resolution.skipped] == ["the customer has no contact e-mail address"]
    assert resolution.recipients[2].scope == Scope.customer(customers["1003"].pk)


def test_customer_named_explicitly_and_in_the_audience_gets_one_mail(customers):
    first = customers["1006"]

    resolution = resolve_selection([f"customer:{first.pk}", MATCHING], audience=context())

    assert [(r.email, r.source) for r in resolution] == [
        ("a@k1006.example", f"customer:{first.pk}"),
        ("b@k1006.example", f"customer:{first.pk}"),
        ("a@k1001.example", f"customer:{customers['1001'].pk}"),
        ("a@k1002.example", f"customer:{customers['1002'].pk}"),
    ]


def test_explicit_inactive_customer_is_skipped_with_a_reason(customers):
    inactive = customers["1004"]

    resolution = resolve_selection([f"customer:{inactive.pk}"])

    assert summary(resolution) == (
        [],
        [(f"customer:{inactive.pk}", "the customer is inactive")],
    )


def test_audience_of_a_template_without_report_is_skipped_not_an_error(customers):
    resolution = resolve_selection([MATCHING, RESPONSIBLE, ACTIVE], audience=context(kind=None))

    assert [s.source for s in resolution.skipped] == [
        MATCHING,
        RESPONSIBLE,
        f"customer:{customers['1005'].pk}",
    ]
    assert {s.reason for s in resolution.skipped[:2]} == {
        "the template has no report, so no records can match"
    }
    # All active customers need no report.
    assert len(resolution) == 5


def test_audience_without_a_run_is_skipped(customers):
    resolution = resolve_selection([MATCHING])

    assert summary(resolution) == (
        [],
        [(MATCHING, "an audience is found only when an action runs")],
    )


def test_responsible_users_of_matching_instruments(customers):
    erika = UserFactory(username="erika", last_name="Muster")
    anna = UserFactory(username="anna", last_name="Adler")
    only_later = UserFactory(username="later")
    retired = UserFactory(username="retired", is_active=False)
    silent = UserFactory(username="silent", email="")
    overdue(customer=customers["1001"], responsible=erika)
    overdue(customer=customers["1003"], responsible=erika)
    overdue(customer=customers["1003"], responsible=anna)
    later(customer=customers["1001"], responsible=only_later)
    overdue(customer=customers["1001"], responsible=retired)
    overdue(customer=customers["1001"], responsible=silent)

    resolution = resolve_selection([RESPONSIBLE], audience=context())

    assert summary(resolution) == (
        [
            ("anna@example.com", f"user:{anna.pk}", f"user:{anna.pk}"),
            ("erika@example.com", f"user:{erika.pk}", f"user:{erika.pk}"),
        ],
        [(f"user:{silent.pk}", "the user has no e-mail address")],
    )


def test_responsible_users_of_locations_are_the_locations_responsible(customers):
    keeper = UserFactory(username="keeper")
    instrument_owner = UserFactory(username="owner")
    hall = LocationFactory(customer=customers["1001"], responsible=keeper)
    overdue(customer=customers["1001"], location=hall, responsible=instrument_owner)

    resolution = resolve_selection([RESPONSIBLE], audience=context(kind=RecordKind.LOCATIONS))

    assert [r.email for r in resolution] == ["keeper@example.com"]


def test_responsible_users_of_tickets_are_assignees_of_open_matching_tickets(customers):
    open_due = UserFactory(username="open")
    closed = UserFactory(username="closed")
    far = UserFactory(username="far")
    customer = customers["1001"]
    SupportTicketFactory(customer=customer, assignee=open_due, due_date=TODAY)
    SupportTicketFactory(customer=customer, assignee=closed, due_date=TODAY, status="closed")
    SupportTicketFactory(customer=customer, assignee=far, due_date=TODAY + dt.timedelta(days=90))

    resolution = resolve_selection([RESPONSIBLE], audience=context(kind=RecordKind.TICKETS))

    assert [(r.email, r.scope) for r in resolution] == [
        ("open@example.com", Scope.user(open_due.pk))
    ]


def test_matching_customers_of_tickets(customers):
    SupportTicketFactory(customer=customers["1003"], due_date=TODAY - dt.timedelta(days=2))
    SupportTicketFactory(customer=customers["1002"], due_date=TODAY, status="closed")

    resolution = resolve_selection([MATCHING], audience=context(kind=RecordKind.TICKETS))

    assert [r.email for r in resolution] == ["a@k1003.example"]


def test_audiences_take_a_few_queries_whatever_their_size(db, django_assert_max_num_queries):
    erika = UserFactory(username="erika")
    for number in range(50):
        customer = CustomerFactory(number=f"3{number:04d}", emails=[f"a@k{number}.example"])
        overdue(customer=customer, responsible=erika if number % 2 else None)

    with django_assert_max_num_queries(2):
        matching = resolve_selection([MATCHING], audience=context())
    with django_assert_max_num_queries(1):
        responsible = resolve_selection([RESPONSIBLE], audience=context())
    with django_assert_max_num_queries(2):
        active = resolve_selection([ACTIVE])

    assert (len(matching), len(responsible), len(active)) == (50, 1, 50)


# --- counting rows -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("report", "kind"),
    [
        ("instruments_due", RecordKind.INSTRUMENTS),
        ("instruments_by_location", RecordKind.LOCATIONS),
        ("open_tickets", RecordKind.TICKETS),
    ],
)
def test_counted_rows_are_the_rows_the_report_builds(customers, report, kind):
    erika = UserFactory(username="erika")
    hall = LocationFactory(customer=customers["1001"], responsible=erika)
    overdue(customer=customers["1001"], location=hall, responsible=erika)
    SupportTicketFactory(customer=customers["1001"], assignee=erika, due_date=TODAY)
    SupportTicketFactory(customer=customers["1003"], due_date=TODAY - dt.timedelta(days=1))
    provider = get_report(report)
    assert provider.records == kind
    scopes = [
        *(Scope.customer(c.pk) for c in customers.values()),
        Scope.user(erika.pk),
        Scope.all(),
    ]

    counted = count_matching_records(
        kind=kind, scopes=scopes, due_filter="due_overdue", window_days=30, today=TODAY
    )
    via_provider = provider.count_rows_many(
        scopes=scopes, due_filter="due_overdue", window_days=30, today=TODAY
    )

    built = {
        scope: len(
            list(
                provider.build_rows(
                    scope=scope, due_filter="due_overdue", window_days=30, today=TODAY
                )
            )
        )
        for scope in scopes
    }
    assert counted == built
    assert via_provider == built


def test_counting_many_scopes_takes_one_query_per_kind(db, django_assert_num_queries):
    customers = [CustomerFactory(number=f"4{n:04d}") for n in range(20)]
    for customer in customers:
        overdue(customer=customer)

    with django_assert_num_queries(2):
        counted = count_matching_records(
            kind=RecordKind.INSTRUMENTS,
            scopes=[*(Scope.customer(c.pk) for c in customers), Scope.all()],
            due_filter="overdue",
            window_days=30,
            today=TODAY,
        )

    assert counted[Scope.all()] == 20
    assert {counted[Scope.customer(c.pk)] for c in customers} == {1}


# --- checks, labels, search ----------------------------------------------------------------


def test_check_selection_allows_audiences_by_permission(db, viewer, outsider):
    assert [item.token for item in check_selection([MATCHING, RESPONSIBLE], user=viewer)] == [
        MATCHING,
        RESPONSIBLE,
    ]
    with pytest.raises(ValidationError) as error:
        check_selection([ACTIVE, RESPONSIBLE], user=outsider)

    assert error.value.messages == [
        f"The recipient {ACTIVE} does not exist or is not available to you.",
        f"The recipient {RESPONSIBLE} does not exist or is not available to you.",
    ]


def test_customer_audiences_need_the_permission_to_see_customers(db, viewer):
    from django.contrib.auth.models import Permission

    no_customers = UserFactory(username="no-customers", roles=[VIEWER])
    # A role without the customer view permission (an installation may narrow a role).
    no_customers.groups.get().permissions.remove(Permission.objects.get(codename="view_customer"))
    no_customers = type(no_customers).objects.get(pk=no_customers.pk)

    assert unavailable_references(["x@example.com", MATCHING, RESPONSIBLE], user=no_customers) == [
        (2, parse_token(MATCHING))
    ]


def test_describe_selection_labels_audiences(db, viewer, outsider):
    described = describe_selection([MATCHING, ACTIVE], user=viewer)
    hidden = describe_selection([RESPONSIBLE], user=outsider)

    assert [(c.token, c.label, c.kind) for c in described] == [
        (MATCHING, "Customers with matching records", "audience"),
        (ACTIVE, "All active customers", "audience"),
    ]
    assert [c.label for c in hidden] == [f"{RESPONSIBLE} (unknown selection)"]


def test_search_offers_audiences_only_when_asked(db, viewer):
    customer = CustomerFactory(number="5001", name="Matching Messtechnik GmbH")

    with_audiences = search_recipients("matching", user=viewer, audiences=True)
    without = search_recipients("matching", user=viewer)

    assert [(c.token, c.as_dict()["kind_label"]) for c in with_audiences] == [
        (MATCHING, "Audience"),
        (RESPONSIBLE, "Audience"),
        (f"customer:{customer.pk}", "Customer"),
    ]
    assert [c.kind for c in without] == ["customer"]
    assert [
        c.token for c in search_recipients("active customers", user=viewer, audiences=True)
    ] == [ACTIVE]
