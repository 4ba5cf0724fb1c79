import os
import socket
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from calmail.celery import app as celery_app
from mailbox import tasks
from mailbox.models import DeliveryAttempt, OutboxMessage, Status
from tests.mailbox.conftest import due_mail


@pytest.fixture
def eager():
    """Tasks dispatched from tasks run inline (no broker, no worker)."""
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


def received_ids(server) -> list[str]:
    return [str(received.message["Message-ID"]) for received in server.messages]


def test_task_names_are_explicit():
    assert tasks.deliver_configuration.name == "mailbox.deliver_configuration"
    assert tasks.sweep.name == "mailbox.sweep"
    assert {"mailbox.deliver_configuration", "mailbox.sweep"} <= set(celery_app.tasks)


def test_sweep_is_scheduled_every_minute(settings):
    assert settings.CELERY_BEAT_SCHEDULE["mailbox-sweep"]["task"] == "mailbox.sweep"
    assert settings.CELERY_BEAT_SCHEDULE["mailbox-sweep"]["schedule"] == 60.0


def test_delivery_run_ends_well_before_the_task_limits(settings):
    # A run hands over after CALMAIL_DELIVERY_RUN_SECONDS (plus its last batch); the task
    # limits must leave room for that, and stay below the broker's visibility timeout.
    assert settings.CALMAIL_DELIVERY_RUN_SECONDS * 2 < settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert settings.CELERY_TASK_SOFT_TIME_LIMIT < settings.CELERY_TASK_TIME_LIMIT
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
    if visibility is not None:
        assert visibility > settings.CELERY_TASK_TIME_LIMIT


def test_deliver_configuration_sends_due_mail(configuration, smtp_server):
    message = due_mail(configuration)

    result = tasks.deliver_configuration(configuration.pk)

    assert received_ids(smtp_server) == [message.message_id]
    assert OutboxMessage.objects.get(pk=message.pk).status == Status.SENT
    assert (result["sent"], result["stop_reason"], result["more_due"]) == (1, "drained", False)
    # Called outside a worker, the worker id falls back to this host's name.
    assert DeliveryAttempt.objects.get().worker == f"{socket.gethostname()}:{os.getpid()}"


def test_deliver_configuration_eager_uses_the_request_hostname(configuration, smtp_server):
    due_mail(configuration)

    tasks.deliver_configuration.apply(args=[configuration.pk])

    # Celery names the host in the request; the process id tells workers on it apart.
    [worker] = DeliveryAttempt.objects.values_list("worker", flat=True)
    assert worker.endswith(f":{os.getpid()}")
    assert worker != f":{os.getpid()}"


def test_deliver_configuration_of_a_deleted_configuration(db):
    result = tasks.deliver_configuration(987654)

    assert result["stop_reason"] == "no_configuration"


def test_deliver_configuration_hands_over_until_drained(
    configuration, smtp_server, settings, eager
):
    # Runs of one batch each: every run hands over to the next, and the first (seeing a
    # backlog and a free slot) also starts a parallel one.
    settings.CALMAIL_DELIVERY_BATCH_SIZE = 2
    settings.CALMAIL_DELIVERY_RUN_SECONDS = 0
    messages = [due_mail(configuration) for _ in range(7)]

    tasks.deliver_configuration(configuration.pk)

    counts = Counter(received_ids(smtp_server))
    assert counts == Counter({message.message_id: 1 for message in messages})
    assert set(OutboxMessage.objects.values_list("status", "attempt_count")) == {(Status.SENT, 1)}


def test_deliver_configuration_rate_limited_does_not_loop(configuration, smtp_server, eager):
    configuration.rate_limit_per_minute = 2
    configuration.save()
    for _ in range(4):
        due_mail(configuration)

    result = tasks.deliver_configuration(configuration.pk)

    assert (result["sent"], result["stop_reason"]) == (2, "rate_limited")
    assert result["rate_limited_until"] is not None
    assert OutboxMessage.objects.filter(status=Status.QUEUED).count() == 2


def test_sweep_task_recovers_and_delivers(
    configuration, smtp_server, eager, django_capture_on_commit_callbacks
):
    lost = due_mail(
        configuration,
        status=Status.SENDING,
        claimed_by="dead-host:1",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    planned = due_mail(configuration, status=Status.SCHEDULED, next_attempt_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        result = tasks.sweep()

    assert result == {"recovered": 1, "scheduled": 1, "dispatched": [configuration.pk]}
    assert sorted(received_ids(smtp_server)) == sorted([lost.message_id, planned.message_id])
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {Status.SENT}


def test_sweep_task_with_nothing_to_do(db):
    assert tasks.sweep() == {"recovered": 0, "scheduled": 0, "dispatched": []}
