"""The batch paths of a fan-out (reports built for many scopes at once, a chunk of
recipients rendered together) give exactly what the one-by-one paths give."""

import dataclasses
import io
import zipfile

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from inventory.recipients import resolve_selection
from inventory.selectors import Scope
from templates_app import rendering, services
from templates_app.reports import get, providers
from templates_app.reports.registry import reports_built_ahead
from tests.factories import (
    CustomerFactory,
    InstrumentFactory,
    LocationFactory,
    SupportTicketFactory,
    UserFactory,
)
from tests.templates_app.conftest import TODAY, due_in

REPORTS = ["instruments_due", "instruments_by_location", "open_tickets"]
FILTERS = ["all", "due", "overdue", "due_overdue"]


@pytest.fixture
def world(db):
    customers = [CustomerFactory(language="en" if n % 2 else "de") for n in range(6)]
    users = [UserFactory(first_name=f"U{n}") for n in range(3)]
    nobody = CustomerFactory(emails=[])  # no contact, no instruments
    for n, customer in enumerate(customers):
        lab = LocationFactory(customer=customer, responsible=users[n % 3], name=f"Lab {n % 2}")
        other = LocationFactory(customer=customer, name="")
        for k in range(n):  # customer 0 has no instruments
            InstrumentFactory(
                customer=customer,
                location=[lab, other, None][k % 3],
                responsible=users[(n + k) % 3] if k % 2 else None,
                **due_in([-40, -1, 0, 5, 30, 31, 200][k % 7]),
            )
            SupportTicketFactory(customer=customer, assignee=users[k % 3] if k % 2 else None)
    # Ties in the due date, sorted by number.
    for number in ("Z-2", "Z-1", "Z-3"):
        InstrumentFactory(inventory_number=number, customer=customers[3], **due_in(3))
    return [*customers, nobody], users


def scopes_of(world):
    customers, users = world
    return (
        [Scope.customer(c.pk) for c in customers]
        + [Scope.user(u.pk) for u in users]
        + [
            Scope.all(),
            Scope.all(),
            # Chosen customers (shared by two recipients) and no report.
            Scope.customers([customers[0].pk, customers[3].pk]),
            Scope.customers([customers[0].pk, customers[3].pk]),
            Scope.none(),
            Scope.none(),
        ]
    )


@pytest.mark.parametrize("key", REPORTS)
@pytest.mark.parametrize("due_filter", FILTERS)
@pytest.mark.parametrize("language", ["de", "en"])
def test_build_many_equals_build(world, key, due_filter, language):
    provider = get(key)
    scopes = scopes_of(world)
    with translation.override(language):
        many = provider.build_many(
            scopes=scopes, due_filter=due_filter, window_days=30, today=TODAY
        )
        assert set(many) == set(scopes)
        for scope in scopes:
            one = provider.build(scope=scope, due_filter=due_filter, window_days=30, today=TODAY)
            assert many[scope] == one, scope
            assert many[scope].headers() == one.headers()


def test_build_many_reads_a_kind_of_scope_with_one_query(world):
    customers, _users = world
    scopes = [Scope.customer(c.pk) for c in customers]
    with CaptureQueriesContext(connection) as queries:
        get("instruments_due").build_many(
            scopes=scopes, due_filter="all", window_days=30, today=TODAY
        )
    assert len(queries) == 1


@pytest.mark.parametrize("key", REPORTS)
def test_build_many_leaves_out_scopes_past_the_row_bound(world, key, monkeypatch):
    monkeypatch.setattr(providers, "MAX_ROWS_AHEAD", 3)
    provider = get(key)
    scopes = scopes_of(world)
    many = provider.build_many(scopes=scopes, due_filter="all", window_days=30, today=TODAY)
    assert set(many) < set(scopes)
    for scope, report in many.items():
        assert report == provider.build(scope=scope, due_filter="all", window_days=30, today=TODAY)


def test_build_inside_reports_built_ahead_hands_out_the_built_report(world):
    customers, _ = world
    provider = get("instruments_due")
    scopes = [Scope.customer(c.pk) for c in customers]
    with reports_built_ahead() as ahead:
        with translation.override("de"):
            ahead.add(provider, scopes=scopes, due_filter="all", window_days=30, today=TODAY)
        with CaptureQueriesContext(connection) as queries, translation.override("de"):
            provider.build(scope=scopes[2], due_filter="all", window_days=30, today=TODAY)
        assert len(queries) == 0
        # Another language, filter or day is built anew.
        with CaptureQueriesContext(connection) as queries, translation.override("en"):
            provider.build(scope=scopes[2], due_filter="all", window_days=30, today=TODAY)
        assert len(queries) == 1
    with CaptureQueriesContext(connection) as queries, translation.override("de"):
        provider.build(scope=scopes[2], due_filter="all", window_days=30, today=TODAY)
    assert len(queries) == 1


def comparable(mail):
    if isinstance(mail, Exception):
        return (type(mail), str(mail))
    fields = dataclasses.asdict(mail)
    fields["attachments"] = [
        (a.filename, a.content_type, a.exported, sorted(_parts(a.content).items()))
        for a in mail.attachments
    ]
    return fields


def _parts(content):
    if not content.startswith(b"PK"):
        return {"": content}
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {n: archive.read(n) for n in archive.namelist() if n != "docProps/core.xml"}


TEXTS = {
    "de": {
        "subject": "Fällige Prüfmittel für {{ customer.name }}{{ user.name }}",
        "body_html": "<p>Guten Tag {{ recipient.name }},</p><p>{{ count }} fällig. {{ report.filter }}"
        "{% for row in rows %}<br>{{ row.inventory_number }} {{ row.due_state }}{% endfor %}</p>",
        "body_text": "",
    },
    "en": {
        "subject": "Instruments due for {{ customer.name }} {{ customer.city }}",
        "body_html": "<p>Hello {{ recipient.name }},</p>",
        "body_text": "Hello {{ recipient.name }}, {{ count }} due ({{ report.columns.0.label }}).",
    },
}


@pytest.mark.parametrize("export_type", ["excel", "csv"])
@pytest.mark.parametrize("key", ["instruments_due", "instruments_by_location"])
@pytest.mark.parametrize("empty_allowed", [False, True])
def test_render_for_recipients_equals_render_for_recipient(world, export_type, key, empty_allowed):
    customers, users = world
    values = {
        "name": "T",
        "template_type": "inventory" if key == "instruments_due" else "location",
        "description": "",
        "add_attachment": "report",
        "empty_attachment_allowed": empty_allowed,
        "due_filter": "due_overdue",
        "due_window_days": 30,
        "report": key,
        "from_email": "labor@calserver.example",
        "from_name": "Labor",
        "export_type": export_type,
        "attachment_type": "file",
        "csv_separator": ";",
        "default_language": "de",
        "owner_group": None,
    }
    template = services.mail_template_create(values=values, translations=TEXTS)
    tokens = [f"customer:{c.pk}" for c in customers] + [f"user:{u.pk}" for u in users]
    tokens += ["a@example.com", "b@example.com"]
    recipients = resolve_selection(tokens).recipients
    one = [
        services.render_for_recipient(template=template, recipient=r, today=TODAY)
        for r in recipients
    ]
    for details in (None, {recipients[0]: {"customer": {"name": "Given"}, "user": {}}}):
        many = services.render_for_recipients(template, recipients, TODAY, details)
        expected = list(one)
        if details:
            expected[0] = services.render_for_recipient(
                template=template,
                recipient=recipients[0],
                today=TODAY,
                details=details[recipients[0]],
            )
        assert [comparable(m) for m in many] == [comparable(m) for m in expected]


def test_render_for_recipients_gives_the_error_of_each_failing_render(world):
    customers, _ = world
    values = {
        "name": "T",
        "template_type": "inventory",
        "description": "",
        "add_attachment": "report",
        "empty_attachment_allowed": True,
        "due_filter": "all",
        "due_window_days": 30,
        "report": "instruments_due",
        "from_email": "l@example.com",
        "from_name": "",
        "export_type": "excel",
        "attachment_type": "file",
        "csv_separator": ";",
        "default_language": "de",
        "owner_group": None,
    }
    template = services.mail_template_create(
        values=values,
        translations={
            "de": {"subject": "{{ count|center:10 }}", "body_html": "x", "body_text": ""}
        },
    )
    template.translations.update(subject="{{ count|center:1000 }}")
    template = type(template).objects.get(pk=template.pk)
    recipients = resolve_selection([f"customer:{c.pk}" for c in customers]).recipients
    many = services.render_for_recipients(template, recipients, TODAY)
    assert len(many) == len(recipients)
    assert all(isinstance(m, rendering.TemplateRenderError) for m in many)


def test_render_for_recipients_queries_per_chunk_not_per_recipient(world):
    customers, _ = world
    many_customers = customers + [CustomerFactory() for _ in range(20)]
    for c in many_customers[-20:]:
        InstrumentFactory(customer=c, **due_in(-1))
    values = {
        "name": "T",
        "template_type": "inventory",
        "description": "",
        "add_attachment": "report",
        "empty_attachment_allowed": False,
        "due_filter": "due_overdue",
        "due_window_days": 30,
        "report": "instruments_due",
        "from_email": "l@example.com",
        "from_name": "",
        "export_type": "excel",
        "attachment_type": "file",
        "csv_separator": ";",
        "default_language": "de",
        "owner_group": None,
    }
    template = services.mail_template_create(values=values, translations=TEXTS)
    template = type(template).objects.get(pk=template.pk)
    recipients = resolve_selection([f"customer:{c.pk}" for c in many_customers]).recipients
    with CaptureQueriesContext(connection) as queries:
        services.render_for_recipients(template, recipients, TODAY)
    # translations, customer details, one report query per language (de, en)
    assert len(queries) <= 4, [q["sql"][:80] for q in queries]


def test_a_subclass_with_its_own_build_rows_is_built_by_it(world):
    customers, _ = world

    class Renamed(providers.InstrumentsDueReport):
        key = "test_renamed"

        def build_rows(self, *, scope, due_filter, window_days, today):
            for row in super().build_rows(
                scope=scope, due_filter=due_filter, window_days=window_days, today=today
            ):
                yield {**row, "description": "changed"}

    report = Renamed()
    scopes = [Scope.customer(c.pk) for c in customers]
    many = report.build_many(scopes=scopes + scopes, due_filter="all", window_days=30, today=TODAY)
    assert all(row["description"] == "changed" for r in many.values() for row in r.rows)
    assert set(many) == set(scopes)  # built ahead: each occurs twice
