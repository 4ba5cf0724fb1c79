import pytest
from django.utils import timezone

from mailbox.models import OutboxMessage, Status
from mailbox.services import message_cancel, message_delete, message_resend
from mailbox.transitions import ALLOWED, InvalidTransition, transition
from tests.factories import OutboxAttachmentFactory, OutboxMessageFactory

ALLOWED_PAIRS = [
    (current, target) for current in Status for target in Status if target in ALLOWED[current]
]
REFUSED_PAIRS = [
    (current, target) for current in Status for target in Status if target not in ALLOWED[current]
]


def reload(message: OutboxMessage) -> OutboxMessage:
    return OutboxMessage.objects.get(pk=message.pk)


def test_allowed_names_every_status():
    assert set(ALLOWED) == set(Status)
    for targets in ALLOWED.values():
        assert targets <= set(Status)


@pytest.mark.django_db
@pytest.mark.parametrize(("current", "target"), ALLOWED_PAIRS)
def test_transition_allowed(current, target):
    message = OutboxMessageFactory(status=current)

    transition(message, target, error_message="changed")

    assert (message.status, message.error_message) == (target, "changed")
    stored = reload(message)
    assert (stored.status, stored.error_message) == (target, "changed")


@pytest.mark.django_db
@pytest.mark.parametrize(("current", "target"), REFUSED_PAIRS)
def test_transition_refused(current, target):
    message = OutboxMessageFactory(status=current)

    with pytest.raises(InvalidTransition) as refused:
        transition(message, target, error_message="changed")

    assert refused.value.code == "invalid_transition"
    assert refused.value.messages == [
        f"A {Status(current).label} mail cannot become {Status(target).label}."
    ]
    stored = reload(message)
    assert (stored.status, stored.error_message) == (current, "")
    assert message.status == current


def test_transition_refused_after_concurrent_change(db):
    message = OutboxMessageFactory(status=Status.QUEUED)
    stale = reload(message)
    transition(message, Status.SENDING)

    with pytest.raises(InvalidTransition) as refused:
        transition(stale, Status.CANCELLED)

    assert refused.value.code == "concurrent_change"
    assert refused.value.messages == [
        "The mail changed meanwhile (it is no longer queued); reload and try again."
    ]
    assert reload(message).status == Status.SENDING
    assert stale.status == Status.QUEUED


@pytest.mark.parametrize("status", [Status.SENT, Status.FAILED, Status.CANCELLED])
def test_resend_starts_a_new_delivery_cycle(db, status, django_capture_on_commit_callbacks):
    message = OutboxMessageFactory(
        status=status,
        attempt_count=4,
        error_message="Message refused: 554 no",
        sent_at=timezone.now() if status == Status.SENT else None,
    )

    with django_capture_on_commit_callbacks() as callbacks:
        message_resend(message=message)

    stored = reload(message)
    assert (stored.status, stored.attempt_count, stored.error_message, stored.sent_at) == (
        Status.QUEUED,
        0,
        "",
        None,
    )
    assert stored.next_attempt_at <= timezone.now()
    # Delivery is nudged after commit.
    assert len(callbacks) == 1


@pytest.mark.parametrize("status", [Status.QUEUED, Status.SENDING, Status.DEFERRED])
def test_resend_refused_while_on_its_way(db, status):
    message = OutboxMessageFactory(status=status)

    with pytest.raises(InvalidTransition):
        message_resend(message=message)

    assert reload(message).status == status


@pytest.mark.parametrize("status", [Status.SCHEDULED, Status.QUEUED, Status.DEFERRED])
def test_cancel(db, status):
    message = OutboxMessageFactory(status=status, next_attempt_at=timezone.now())

    message_cancel(message=message)

    stored = reload(message)
    assert (stored.status, stored.next_attempt_at) == (Status.CANCELLED, None)


@pytest.mark.parametrize("status", [Status.SENDING, Status.SENT, Status.FAILED])
def test_cancel_refused(db, status):
    message = OutboxMessageFactory(status=status)

    with pytest.raises(InvalidTransition):
        message_cancel(message=message)

    assert reload(message).status == status


def test_delete_removes_row_and_files(db, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.MEDIA_ROOT = tmp_path
    attachment = OutboxAttachmentFactory(message__status=Status.SENT)
    path = tmp_path / attachment.file.name
    assert path.exists()

    with django_capture_on_commit_callbacks(execute=True):
        message_delete(message=attachment.message)

    assert not OutboxMessage.objects.filter(pk=attachment.message_id).exists()
    assert not path.exists()


def test_delete_refused_while_sending(db):
    message = OutboxMessageFactory(status=Status.SENDING)

    with pytest.raises(InvalidTransition) as refused:
        message_delete(message=message)

    assert refused.value.messages == ["The mail is being sent right now; try again in a moment."]
    assert OutboxMessage.objects.filter(pk=message.pk).exists()
