"""The outbox's delivery attempts, listed as a tab of the Log."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import DeliveryAttemptFactory

ATTEMPTS = reverse("mailbox:attempts")
LOG = reverse("maillog:list")


def records(response) -> list:
    return [row.record for row in response.context["table"].page.object_list]


def test_attempts_stay_under_the_log():
    assert ATTEMPTS == "/log/attempts/"


@pytest.mark.django_db
def test_log_and_attempts_show_both_tabs_with_the_current_one_active(client_for, admin):
    client = client_for(admin)

    tabs = [
        (response.context["tabs"], response.context["active_tab"])
        for response in (client.get(LOG), client.get(ATTEMPTS))
    ]

    both = [("events", LOG), ("attempts", ATTEMPTS)]
    assert [([(key, url) for key, _title, url in shown], active) for shown, active in tabs] == [
        (both, "events"),
        (both, "attempts"),
    ]
    assert f'href="{ATTEMPTS}"' in client.get(LOG).content.decode()


@pytest.mark.django_db
def test_attempts_tab_filters_and_visibility(client_for, admin, power_user, team):
    power_user.groups.add(team)
    own = DeliveryAttemptFactory(
        message__owner_group=team, outcome="deferred", reply_code=451, worker="w-1"
    )
    other = DeliveryAttemptFactory(outcome="sent", reply_code=250, worker="w-2")

    def rows(user, **query):
        return [attempt.pk for attempt in records(client_for(user).get(ATTEMPTS, query))]

    assert rows(admin) == [other.pk, own.pk]
    assert rows(power_user) == [own.pk]
    assert rows(admin, outcome="deferred") == [own.pk]
    assert rows(admin, reply_code_min=400, reply_code_max=499) == [own.pk]
    assert rows(admin, worker="w-2") == [other.pk]
    assert rows(admin, message=own.message_id) == [own.pk]
    assert rows(admin, smtp_configuration=other.smtp_configuration_id) == [other.pk]


@pytest.mark.django_db
def test_attempts_query_count_is_the_same_for_one_and_three_rows(
    client_for, admin, django_assert_num_queries
):
    client = client_for(admin)
    DeliveryAttemptFactory()
    client.get(ATTEMPTS)
    with CaptureQueriesContext(connection) as one_row:
        client.get(ATTEMPTS)
    DeliveryAttemptFactory()
    DeliveryAttemptFactory()

    with django_assert_num_queries(len(one_row.captured_queries)):
        response = client.get(ATTEMPTS)

    assert len(response.context["table"].page.object_list) == 3


@pytest.mark.django_db
def test_outsider_cannot_open_the_attempts(client_for, outsider):
    DeliveryAttemptFactory()

    response = client_for(outsider).get(ATTEMPTS)

    assert (response.status_code, b"<table" in response.content) == (403, False)
