"""The outbox status machine: every status change of a mail goes through transition().

scheduled → queued → sending → sent
                      sending → deferred → sending … → failed
scheduled / queued / deferred → cancelled
sent / failed / cancelled → queued (resend: a new delivery cycle)
sending → queued (a worker's lease expired: it died mid-send)
"""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from mailbox.models import OutboxMessage, Status

ALLOWED: dict[str, frozenset[str]] = {
    Status.SCHEDULED: frozenset({Status.QUEUED, Status.CANCELLED}),
    Status.QUEUED: frozenset({Status.SENDING, Status.CANCELLED}),
    Status.SENDING: frozenset({Status.SENT, Status.DEFERRED, Status.FAILED, Status.QUEUED}),
    Status.DEFERRED: frozenset({Status.SENDING, Status.CANCELLED}),
    Status.SENT: frozenset({Status.QUEUED}),
    Status.FAILED: frozenset({Status.QUEUED}),
    Status.CANCELLED: frozenset({Status.QUEUED}),
}


class InvalidTransition(ValidationError):
    """A status change the machine does not allow, or a row that changed meanwhile."""


def check_transition(current: str, target: str) -> None:
    if target not in ALLOWED.get(current, ()):
        raise InvalidTransition(
            _("A %(current)s mail cannot become %(target)s.")
            % {"current": Status(current).label, "target": Status(target).label},
            code="invalid_transition",
        )


def transition(message: OutboxMessage, target: str, **fields) -> None:
    """Move message to target, writing fields with it, only if its status is still the one
    we read (a conditional UPDATE: a concurrent change makes this refuse, not overwrite)."""
    current = message.status
    check_transition(current, target)
    updated = OutboxMessage.objects.filter(pk=message.pk, status=current).update(
        status=target, **fields
    )
    if updated != 1:
        raise InvalidTransition(
            _("The mail changed meanwhile (it is no longer %(current)s); reload and try again.")
            % {"current": Status(current).label},
            code="concurrent_change",
        )
    message.status = target
    for name, value in fields.items():
        setattr(message, name, value)
