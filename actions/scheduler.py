"""The tick: turn due slots into runs, exactly once per (action, slot).

Cost grows with the due actions only: they are found through the indexed next_due_at
column, which is empty for unpublished and finished actions. On PostgreSQL the due rows
are claimed with SELECT … FOR UPDATE SKIP LOCKED, so a second beat process skips what the
first holds; on any database the conditional advance of next_due_at and the unique
(action, slot) constraint make a racing tick give up instead of making a second run.
"""

import datetime as dt
import logging
from collections import deque

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from actions import schedule
from actions.models import Action, ActionRun, RunStatus, Trigger
from actions.services import rule_of
from maillog.models import Level
from maillog.services import log_scheduler_event

logger = logging.getLogger(__name__)

# How many due actions one tick takes; the rest wait for the next tick (30 s later).
BATCH_SIZE = 500
# How many missed slots of one action are recorded after a long downtime.
MISSED_RECORD_LIMIT = 100
# A run that starts this late after its slot still counts as on schedule (tick interval, jitter).
ON_TIME_SECONDS = 300


def grace_period() -> dt.timedelta:
    return dt.timedelta(seconds=settings.CALMAIL_CATCHUP_GRACE_SECONDS)


def tick(now: dt.datetime | None = None) -> list[int]:
    """Handle every due action; returns the ids of the runs to execute, committed (the
    task actions.tick dispatches them; benchmarks and race tests look at the runs only)."""
    now = now or timezone.now()
    run_ids: list[int] = []
    with transaction.atomic():
        due = Action.objects.filter(next_due_at__lte=now).order_by("next_due_at")
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True, of=("self",))
        for action in due[:BATCH_SIZE]:
            run_id = _handle(action, now)
            if run_id is not None:
                run_ids.append(run_id)
    return run_ids


def _due_slots(action: Action, now: dt.datetime) -> tuple[list[dt.datetime], dt.datetime | None]:
    """The slots from next_due_at up to now (the last MISSED_RECORD_LIMIT + 1), and the next."""
    rule = rule_of(action)
    passed: deque = deque(maxlen=MISSED_RECORD_LIMIT + 1)
    following = None
    for slot in schedule.iter_slots(rule, action.next_due_at - dt.timedelta(microseconds=1)):
        if slot > now:
            following = slot
            break
        passed.append(slot.astimezone(dt.UTC))
    return list(passed), following


def _handle(action: Action, now: dt.datetime) -> int | None:
    old_due = action.next_due_at
    if not action.published:
        # Unpublished since the column was set: drop it from the index scan.
        Action.objects.filter(pk=action.pk, next_due_at=old_due).update(next_due_at=None)
        return None
    passed, following = _due_slots(action, now)
    following = following.astimezone(dt.UTC) if following else None
    runs: list[ActionRun] = []
    run_now = None
    if passed:
        latest = passed[-1]
        lateness = now - latest
        missed = passed[:-1]
        if lateness <= grace_period():
            trigger = Trigger.SCHEDULE
            if missed or lateness > dt.timedelta(seconds=ON_TIME_SECONDS):
                trigger = Trigger.CATCH_UP
            run_now = ActionRun(action=action, slot=latest, trigger=trigger)
        else:
            missed = passed[-MISSED_RECORD_LIMIT:]
        runs += [
            ActionRun(
                action=action,
                slot=slot,
                trigger=Trigger.SCHEDULE,
                status=RunStatus.MISSED,
                finished_at=now,
            )
            for slot in missed
        ]
        if run_now is not None:
            runs.append(run_now)
    try:
        with transaction.atomic():
            # Only the tick that moves next_due_at on from the value it read makes the runs.
            advanced = Action.objects.filter(pk=action.pk, next_due_at=old_due).update(
                next_due_at=following
            )
            if not advanced:
                return None
            for run in runs:
                run.save()
    except IntegrityError:
        logger.info("Another tick handled action %s slot %s first.", action.pk, old_due)
        return None
    missed_slots = [run.slot for run in runs if run.status == RunStatus.MISSED]
    if missed_slots:
        logger.warning("Action %s missed %d slot(s) during downtime.", action.pk, len(missed_slots))
        log_scheduler_event(
            message=gettext_noop(
                "%(action)s missed %(count)s slot(s) while the scheduler was down (latest "
                "%(slot)s); missed slots are never sent automatically."
            ),
            level=Level.WARNING,
            params={
                "action": action.description,
                "count": len(missed_slots),
                "slot": missed_slots[-1].isoformat(),
            },
            details={"slots": [slot.isoformat() for slot in missed_slots]},
            obj=action,
            group=action.group_id,
            actor=None,
        )
    if run_now is None:
        return None
    return run_now.pk
