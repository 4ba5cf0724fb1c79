"""Writes to actions (the execution of a run: actions.runs).

next_due_at is always recomputed from "now" (strictly after it) when an action is saved,
published or re-activated, so none of these ever fires a catch-up: an edit at 10:05 of a
10:00 rule makes tomorrow's 10:00 the next slot.
"""

import datetime as dt
from collections.abc import Mapping

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from actions import schedule
from actions.models import Action
from calmail.common.roles import is_administrator
from inventory.recipients import check_selection

EDITABLE_FIELDS = (
    "description",
    "days",
    "weekdays",
    "months",
    "time_of_day",
    "start",
    "end",
    "group",
    "published",
    "send_without_attachments",
    "template",
    "smtp_configuration",
    "recipients",
)


def rule_of(action: Action) -> schedule.Rule:
    return schedule.Rule(
        time=action.time_of_day,
        start=action.start,
        end=action.end,
        days=schedule.parse_days(action.days),
        weekdays=schedule.parse_weekdays(action.weekdays),
        months=schedule.parse_months(action.months),
    )


def compute_next_due(action: Action, *, after: dt.datetime) -> dt.datetime | None:
    if not action.published:
        return None
    slot = schedule.next_slot(rule_of(action), after)
    return slot.astimezone(dt.UTC) if slot else None


def normalise_rule_values(values: Mapping) -> dict:
    """Days, weekdays and months as sorted plain lists, as stored."""
    result = dict(values)
    if "days" in result:
        result["days"] = sorted(schedule.parse_days(result["days"]), key=schedule.days_sort_key)
    if "weekdays" in result:
        result["weekdays"] = sorted(schedule.parse_weekdays(result["weekdays"]))
    if "months" in result:
        result["months"] = sorted(schedule.parse_months(result["months"]))
    return result


def _validate(action: Action, *, user: User | None = None) -> None:
    errors: dict[str, list] = {}
    try:
        action.full_clean()
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if action.end is not None and action.start and action.end < action.start:
        errors.setdefault("end", []).append(_("The end lies before the start."))
    if user is not None and action.group_id is None and not is_administrator(user):
        # Without a team only administrators would see the action: its author would lose it.
        errors.setdefault("group", []).append(
            _("Choose a team: only administrators may leave it empty.")
        )
    if not action.recipients:
        errors.setdefault("recipients", []).append(_("Choose at least one recipient."))
    elif user is not None:
        try:
            check_selection(action.recipients, user=user)
        except ValidationError as exc:
            errors.setdefault("recipients", []).extend(exc.messages)
    if not errors:
        try:
            rule = rule_of(action)
        except ValueError as exc:
            errors.setdefault("days", []).append(str(exc))
        else:
            if not schedule.can_ever_fire(rule):
                errors.setdefault("__all__", []).append(
                    _(
                        "This rule can never fire: no date matches the days of month, "
                        "weekdays and months together between start and end."
                    )
                )
    if errors:
        raise ValidationError(errors)


def _apply(action: Action, values: Mapping) -> None:
    for name, value in normalise_rule_values(values).items():
        if name in EDITABLE_FIELDS:
            setattr(action, name, value)


@transaction.atomic
def action_create(
    *, values: Mapping, user: User | None = None, now: dt.datetime | None = None
) -> Action:
    """Create an action; ValidationError (per field) when it does not fit or can never fire."""
    action = Action()
    _apply(action, values)
    _validate(action, user=user)
    action.next_due_at = compute_next_due(action, after=now or timezone.now())
    action.save()
    return action


@transaction.atomic
def action_update(
    *, action: Action, values: Mapping, user: User | None = None, now: dt.datetime | None = None
) -> Action:
    _apply(action, values)
    _validate(action, user=user)
    action.next_due_at = compute_next_due(action, after=now or timezone.now())
    action.save()
    return action


@transaction.atomic
def action_set_published(
    *, action: Action, published: bool, now: dt.datetime | None = None
) -> Action:
    """(De)activate; re-activating schedules from now on, never a catch-up."""
    action.published = published
    action.next_due_at = compute_next_due(action, after=now or timezone.now())
    action.save(update_fields=["published", "next_due_at", "updated_at"])
    return action


def copy_description(description: str) -> str:
    max_length = Action._meta.get_field("description").max_length or 200
    suffix = f" ({_('copy')})"
    return description[: max_length - len(suffix)] + suffix


@transaction.atomic
def action_duplicate(*, action: Action, now: dt.datetime | None = None) -> Action:
    """A copy with every setting, unpublished so it does not send before it is checked."""
    values = {name: getattr(action, name) for name in EDITABLE_FIELDS}
    values["description"] = copy_description(action.description)
    values["published"] = False
    return action_create(values=values, now=now)


@transaction.atomic
def action_delete(*, action: Action) -> None:
    action.delete()
