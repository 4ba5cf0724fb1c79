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


# Resend starts a new delivery cycle for a mail whose last one is over (5.6.2). The
# machine also allows scheduled → queued and sending → queued (the sweeper's lease
# recovery); neither is a resend: the latter would send a mail twice while a worker sends it.
RESENDABLE = frozenset({Status.SENT, Status.FAILED, Status.CANCELLED})


class InvalidTransition(ValidationError):
    """A status change the machine does not allow, or a row that changed meanwhile."""


def transition_refusal(current: str, target: str) -> str | None:
    """Why the machine does not allow current → target; None if it does."""
    if target in ALLOWED.get(current, ()):
        return None
    return _("A %(current)s mail cannot become %(target)s.") % {
        "current": Status(current).label,
        "target": Status(target).label,
    }


def check_transition(current: str, target: str) -> None:
    refusal = transition_refusal(current, target)
    if refusal is not None:
        raise InvalidTransition(refusal, code="invalid_transition")


# What may be done to a mail by hand: one rule each, for the services that do it, the
# confirm pages and bulk actions that explain a refusal, and the row menus that offer it.


def resend_refusal(message: OutboxMessage) -> str | None:
    """Why the mail cannot be sent again; None if it can."""
    if message.content_purged_at is not None:
        # Its bodies and files are gone (mailbox.retention): a resend would send an empty mail.
        return _(
            "The content of this mail was deleted after the retention period; it cannot be "
            "sent again."
        )
    if message.status not in RESENDABLE:
        return _(
            "Only sent, failed or cancelled mails can be sent again; this one is %(status)s."
        ) % {"status": Status(message.status).label}
    return None


def cancel_refusal(message: OutboxMessage) -> str | None:
    """Why the mail cannot be cancelled; None if it can."""
    return transition_refusal(message.status, Status.CANCELLED)


def delete_refusal(message: OutboxMessage) -> str | None:
    """Why the mail cannot be deleted: a worker is sending it right now."""
    if message.status == Status.SENDING:
        return _("The mail is being sent right now; try again in a moment.")
    return None


REFUSALS = {"resend": resend_refusal, "cancel": cancel_refusal, "delete": delete_refusal}


def transition(message: OutboxMessage, target: str, **fields: object) -> None:
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
