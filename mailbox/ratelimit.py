"""What bounds a configuration's throughput: parallel connections and the send rate.

Both live in the database, so they hold across every worker process and host, work the
same on SQLite and PostgreSQL, and survive a killed worker:

- Connection slots: a configuration has ``max_connections`` numbered slots
  (``DeliverySlot`` rows, created on first use). A worker takes a free or expired slot
  with a conditional UPDATE before it opens a connection, renews the lease while it
  works and frees the slot when it is done. A killed worker's slot expires, or is taken
  over at once by a worker on the same host that sees the holder process is gone.
- Send rate: the successful ``DeliveryAttempt`` rows of the last minute / hour (index on
  (smtp_configuration, started_at)) plus the mails being sent right now. The engine only
  claims as many mails as the limits still allow, so nothing has to be put back.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet

from mailbox.models import AttemptOutcome, DeliveryAttempt, DeliverySlot, OutboxMessage, Status
from smtpconfig.models import SmtpConfiguration

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


# Connection slots -------------------------------------------------------------------------


def _free(now: datetime) -> Q:
    return Q(holder="") | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)


def slot_acquire(
    *, configuration: SmtpConfiguration, holder: str, now: datetime, lease_until: datetime
) -> int | None:
    """Take one of the configuration's connection slots; its pk, or None when all are held.

    Each take is a conditional UPDATE (WHERE the slot is still free), so two workers racing
    for the same slot cannot both win; the loser tries the next one.
    """
    limit = configuration.max_connections
    slots = DeliverySlot.objects.filter(smtp_configuration=configuration, number__lt=limit)
    for _round in range(2):
        for pk in slots.filter(_free(now)).order_by("number").values_list("pk", flat=True):
            taken = (
                DeliverySlot.objects.filter(pk=pk)
                .filter(_free(now))
                .update(holder=holder, lease_expires_at=lease_until)
            )
            if taken:
                return pk
        existing = set(slots.values_list("number", flat=True))
        missing = [number for number in range(limit) if number not in existing]
        if not missing:
            return _take_over_from_dead_holder(slots, holder=holder, lease_until=lease_until)
        # First use (or max_connections was raised): create the missing slots, free. A
        # concurrent worker creating the same ones is harmless (unique constraint).
        DeliverySlot.objects.bulk_create(
            [DeliverySlot(smtp_configuration=configuration, number=n) for n in missing],
            ignore_conflicts=True,
        )
    return None


def holder_is_dead(holder: str) -> bool:
    """Whether a slot's holder ("name@host:pid", as the delivery task names its worker
    process) was a process on this host that no longer exists. Holders on other hosts,
    and any holder that cannot be checked, count as alive: their lease decides."""
    name, _sep, pid_text = holder.rpartition(":")
    host = name.rpartition("@")[2]
    if not pid_text.isdigit() or host not in {socket.gethostname(), socket.getfqdn()}:
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _take_over_from_dead_holder(
    slots: QuerySet[DeliverySlot], *, holder: str, lease_until: datetime
) -> int | None:
    """Every slot is held: take one whose holder process died on this host (SIGKILL, out
    of memory) without waiting for its lease to run out."""
    for pk, dead in slots.exclude(holder="").values_list("pk", "holder"):
        # Conditional on the dead holder: two workers racing for it cannot both win.
        if holder_is_dead(dead) and DeliverySlot.objects.filter(pk=pk, holder=dead).update(
            holder=holder, lease_expires_at=lease_until
        ):
            return pk
    return None


def slot_renew(*, slot_id: int, holder: str, lease_until: datetime) -> bool:
    """Extend our lease; False if the slot was taken from us (our lease had expired)."""
    return bool(
        DeliverySlot.objects.filter(pk=slot_id, holder=holder).update(lease_expires_at=lease_until)
    )


def slot_release(*, slot_id: int, holder: str) -> None:
    DeliverySlot.objects.filter(pk=slot_id, holder=holder).update(holder="", lease_expires_at=None)


def slot_available(*, configuration: SmtpConfiguration, now: datetime) -> bool:
    """Whether another worker could take a slot right now."""
    held = (
        DeliverySlot.objects.filter(
            smtp_configuration=configuration, number__lt=configuration.max_connections
        )
        .exclude(_free(now))
        .count()
    )
    return held < configuration.max_connections


# Send rate --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Allowance:
    """How many mails may be claimed now; when none, the moment the next one may go."""

    count: int | None  # None: no limit
    free_at: datetime | None = None


def _window_allowance(
    *, configuration_id: int, limit: int, window: timedelta, in_flight: int, now: datetime
) -> Allowance:
    recent = DeliveryAttempt.objects.filter(
        smtp_configuration_id=configuration_id,
        outcome=AttemptOutcome.SENT,
        started_at__gt=now - window,
    )
    sent = recent.count()
    left = limit - sent - in_flight
    if left > 0:
        return Allowance(count=left)
    # The window frees one place each time a send in it grows older than the window:
    # after the (sent + in_flight - limit)-th oldest one has left, one more may go.
    position = min(sent - 1, max(0, sent + in_flight - limit))
    if position < 0:
        # Only mails in flight fill the window; their attempts will be written shortly.
        return Allowance(count=0, free_at=now + timedelta(seconds=1))
    oldest = recent.order_by("started_at").values_list("started_at", flat=True)[
        position : position + 1
    ]
    started = next(iter(oldest), now)
    return Allowance(count=0, free_at=started + window)


def rate_allowance(*, configuration: SmtpConfiguration, now: datetime) -> Allowance:
    """Mails the configuration may still send now under its per-minute and per-hour limits.

    Counts successful attempts in the sliding window plus the configuration's mails being
    sent right now (claimed, not yet answered), so concurrent workers cannot overshoot as
    long as their claims are serialised (the engine locks the configuration row to claim).
    """
    limits = [
        (limit, window)
        for limit, window in (
            (configuration.rate_limit_per_minute, MINUTE),
            (configuration.rate_limit_per_hour, HOUR),
        )
        if limit
    ]
    if not limits:
        return Allowance(count=None)
    in_flight = OutboxMessage.objects.filter(
        smtp_configuration=configuration, status=Status.SENDING
    ).count()
    allowances = [
        _window_allowance(
            configuration_id=configuration.pk,
            limit=limit,
            window=window,
            in_flight=in_flight,
            now=now,
        )
        for limit, window in limits
    ]
    blocked = [
        allowance.free_at
        for allowance in allowances
        if allowance.count == 0 and allowance.free_at is not None
    ]
    if blocked:
        return Allowance(count=0, free_at=max(blocked))
    return Allowance(
        count=min(allowance.count for allowance in allowances if allowance.count is not None)
    )
