import datetime
import io

import openpyxl
import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from maillog.models import AuditAction, Category, Level, LogEntry
from maillog.services import log_audit, log_event
from tests.factories import (
    OutboxMessageFactory,
    SmtpConfigurationFactory,
    UserFactory,
)

LIST = reverse("maillog:list")


def event(label: str, **kwargs) -> LogEntry:
    kwargs.setdefault("category", Category.SCHEDULER)
    kwargs.setdefault("actor", None)
    return log_event(message="Run of %(action)s finished", params={"action": label}, **kwargs)


def records(response) -> list:
    return [row.record for row in response.context["table"].page.object_list]


def shown(response) -> list[str]:
    return [entry.params.get("action") or entry.object_label for entry in records(response)]


# --- access and visibility --------------------------------------------------------------------


@pytest.mark.django_db
def test_outsider_gets_403_and_no_nav_entry(client_for, outsider):
    response = client_for(outsider).get(LIST)

    assert (response.status_code, "maillog" in response.content.decode()) == (403, False)


@pytest.mark.django_db
def test_admin_sees_everything_including_smtp_audit(client_for, admin, team):
    configuration = SmtpConfigurationFactory(name="Server")
    log_audit(
        action=AuditAction.UPDATED, obj=configuration, actor=None, changes={"port": [25, 587]}
    )
    event("Team-Lauf", group=team)
    event("System-Lauf")

    response = client_for(admin).get(LIST, {"category": ""})

    assert {"Server", "Team-Lauf", "System-Lauf"} <= set(shown(response))


@pytest.mark.parametrize("role", ["power_user", "viewer"])
@pytest.mark.django_db
def test_non_admins_see_their_teams_and_own_entries_but_no_smtp_audit(
    request, client_for, role, team, other_team
):
    user = request.getfixturevalue(role)
    user.groups.add(team)
    configuration = SmtpConfigurationFactory(name="Server")
    log_audit(
        action=AuditAction.UPDATED, obj=configuration, actor=user, changes={"port": [25, 587]}
    )
    log_event(
        category=Category.CONFIGURATION,
        message="Connection test of %(object)s failed",
        params={"object": "Server"},
        obj=configuration,
        actor=user,
    )
    event("Team-Lauf", group=team)
    event("Fremd-Lauf", group=other_team)
    event("System-Lauf")

    response = client_for(user).get(LIST, {"category": Category.SCHEDULER})
    everything = client_for(user).get(
        LIST,
        {
            "content_type": ContentType.objects.get_for_model(configuration).pk,
            "object_id": configuration.pk,
        },
    )

    assert shown(response) == ["Team-Lauf"]
    # Their own connection test, but not the audit entry about the configuration.
    assert [entry.audit_action for entry in records(everything)] == [""]


# --- filters per column -------------------------------------------------------------------------


@pytest.fixture
def mixed(db, team):
    erika = UserFactory(username="erika")
    configuration = SmtpConfigurationFactory(name="Hauptserver")
    mail = OutboxMessageFactory(subject="Kalibrierschein 7")
    old = timezone.now() - datetime.timedelta(days=40)
    event("Alt", time=old)
    event("Fehler", level=Level.ERROR)
    event("Erika", actor=erika)
    log_audit(action=AuditAction.DELETED, obj=configuration, actor=None)
    log_event(
        category=Category.DELIVERY,
        message="Mail “%(subject)s” to %(recipient)s cancelled",
        params={"subject": mail.subject, "recipient": mail.recipient},
        obj=mail,
        actor=None,
        details={"status": "cancelled", "reason": "Kundenwunsch"},
    )
    return {"erika": erika, "configuration": configuration, "mail": mail, "old": old}


@pytest.mark.django_db
def test_filter_per_column(client_for, admin, mixed):
    client = client_for(admin)
    LogEntry.objects.filter(category=Category.SECURITY).delete()
    mail_type = ContentType.objects.get_for_model(mixed["mail"])
    today = timezone.localdate()
    # The filter takes local (Berlin) days; the UTC date of "old" is the day before
    # between 22:00/23:00 and midnight UTC.
    old_day = timezone.localdate(mixed["old"]).isoformat()
    cases = {
        "level": ({"level": "error"}, ["Fehler"]),
        "category": ({"category": "delivery"}, [str(mixed["mail"])]),
        "actor": ({"actor": mixed["erika"].pk}, ["Erika"]),
        "time": (
            {
                "time_min": old_day,
                "time_max": old_day,
            },
            ["Alt"],
        ),
        "object": (
            {"content_type": mail_type.pk, "object_id": mixed["mail"].pk},
            [str(mixed["mail"])],
        ),
        "audit_action": ({"audit_action": "deleted"}, ["Hauptserver"]),
        "search": ({"q": "kalibrierschein 7"}, [str(mixed["mail"])]),
        "details (through search)": ({"q": "kundenwunsch"}, [str(mixed["mail"])]),
        "time from": ({"time_min": today.isoformat(), "level": "error"}, ["Fehler"]),
    }

    results = {name: shown(client.get(LIST, query)) for name, (query, _rows) in cases.items()}

    assert results == {name: rows for name, (_query, rows) in cases.items()}


@pytest.mark.django_db
def test_time_filter_takes_local_days_also_on_a_dst_day(client_for, admin):
    # 29 March 2026 in Berlin, 23 hours long: from 23:00 UTC on the 28th (CET) to
    # 22:00 UTC on the 29th (CEST).
    for label, moment in [
        ("Vortag", "2026-03-28T22:59:59+00:00"),
        ("Beginn", "2026-03-28T23:00:00+00:00"),
        ("Ende", "2026-03-29T21:59:59+00:00"),
        ("Folgetag", "2026-03-29T22:00:00+00:00"),
    ]:
        event(label, time=datetime.datetime.fromisoformat(moment))
    client = client_for(admin)

    days = {
        day: shown(
            client.get(LIST, {"time_min": day, "time_max": day, "category": Category.SCHEDULER})
        )
        for day in ("2026-03-28", "2026-03-29", "2026-03-30")
    }

    assert days == {
        "2026-03-28": ["Vortag"],
        "2026-03-29": ["Ende", "Beginn"],
        "2026-03-30": ["Folgetag"],
    }


@pytest.mark.django_db
def test_every_column_sorts(client_for, admin, mixed):
    client = client_for(admin)
    table = client.get(LIST).context["table"]
    # Hidden columns (not among the page's defaults) sort too.
    columns = [column.name for column in table.columns.iterall() if column.orderable]

    pages = {name: client.get(LIST, {"sort": name}).status_code for name in columns}

    assert pages == {name: 200 for name in columns}
    assert set(columns) == {
        "time",
        "level",
        "category",
        "actor",
        "object_type",
        "object",
        "audit_action",
    }


@pytest.mark.django_db
def test_default_order_is_newest_first_with_id_tiebreak(client_for, admin):
    moment = timezone.now() - datetime.timedelta(hours=1)
    first = event("A", time=moment)
    second = event("B", time=moment)

    response = client_for(admin).get(LIST, {"category": Category.SCHEDULER})

    assert [entry.pk for entry in records(response)] == [
        second.pk,
        first.pk,
    ]


# --- links both ways ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_entries_link_to_their_objects(client_for, english, admin, mixed):
    html = client_for(admin).get(LIST).content.decode()

    assert reverse("mailbox:detail", args=[mixed["mail"].pk]) in html
    assert reverse("smtpconfig:detail", args=[mixed["configuration"].pk]) in html


@pytest.mark.django_db
def test_smtp_and_mail_detail_pages_link_to_their_log(client_for, admin):
    configuration = SmtpConfigurationFactory()
    mail = OutboxMessageFactory(smtp_configuration=configuration)
    client = client_for(admin)
    smtp_type = ContentType.objects.get_for_model(configuration)
    mail_type = ContentType.objects.get_for_model(mail)

    smtp_page = client.get(reverse("smtpconfig:detail", args=[configuration.pk])).content.decode()
    mail_page = client.get(reverse("mailbox:detail", args=[mail.pk])).content.decode()

    assert f"{LIST}?content_type={smtp_type.pk}&amp;object_id={configuration.pk}" in smtp_page
    assert f"{LIST}?content_type={mail_type.pk}&amp;object_id={mail.pk}" in mail_page


# --- speed: no COUNT, constant queries ------------------------------------------------------


@pytest.mark.django_db
def test_list_query_count_is_the_same_for_one_and_three_rows(
    client_for, admin, django_assert_num_queries
):
    client = client_for(admin)
    LogEntry.objects.all().delete()
    event("Eins", obj=SmtpConfigurationFactory())
    client.get(LIST)  # warm caches (content types, session)
    with CaptureQueriesContext(connection) as one_row:
        client.get(LIST)
    event("Zwei", obj=OutboxMessageFactory())
    event("Drei", actor=admin)

    with django_assert_num_queries(len(one_row.captured_queries)):
        response = client.get(LIST)

    assert len(response.context["table"].page.object_list) == 3


@pytest.mark.django_db
def test_list_never_counts_rows(client_for, admin):
    client = client_for(admin)
    for number in range(30):
        event(f"Lauf {number}")

    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST, {"page": 2})

    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert (counts, len(response.context["table"].page.object_list) > 0) == ([], True)


# --- export ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_export_csv_and_xlsx_carry_the_rendered_message(client_for, english, admin):
    event("=Export")
    client = client_for(admin)

    csv_text = b"".join(
        client.get(LIST, {"_export": "csv", "category": "scheduler"}).streaming_content
    ).decode()
    xlsx = client.get(LIST, {"_export": "xlsx", "category": "scheduler"})
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(xlsx.streaming_content))).active
    rows = list(sheet.values)

    assert "Run of =Export finished" in csv_text
    assert rows[0][:3] == ("Time", "Level", "Category")
    assert rows[1][6] == "Run of =Export finished"


@pytest.mark.django_db
def test_log_is_in_the_navigation_for_every_role(client_for, viewer):
    html = client_for(viewer).get(LIST).content.decode()

    assert f'href="{LIST}"' in html


@pytest.mark.django_db
def test_sorting_by_level_keeps_newest_first_within_a_level(client_for, admin):
    LogEntry.objects.all().delete()
    now = timezone.now()
    old_error = event("alt", level=Level.ERROR, time=now - datetime.timedelta(hours=2))
    new_error = event("neu", level=Level.ERROR, time=now - datetime.timedelta(hours=1))
    info = event("info", level=Level.INFO, time=now - datetime.timedelta(hours=3))

    response = client_for(admin).get(LIST, {"sort": "level", "category": Category.SCHEDULER})

    assert [entry.pk for entry in records(response)] == [new_error.pk, old_error.pk, info.pk]


@pytest.mark.django_db
def test_user_filter_offers_non_admins_only_themselves(client_for, power_user, admin):
    UserFactory(username="someone-else")

    form = client_for(power_user).get(LIST).context["filter"].form
    admin_form = client_for(admin).get(LIST).context["filter"].form

    assert list(form.fields["actor"].queryset) == [power_user]
    assert len(admin_form.fields["actor"].queryset) == 3
