"""Writes to actions (the execution of a run: actions.runs), and the audience preview of
the next run (audience_preview).

next_due_at is always recomputed from "now" (strictly after it) when an action is saved,
published or re-activated, so none of these ever fires a catch-up: an edit at 10:05 of a
10:00 rule makes tomorrow's 10:00 the next slot.
"""

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from actions import schedule
from actions.models import Action, ReportScope
from calmail.common.roles import is_administrator
from inventory.models import Customer
from inventory.recipients import (
    AudienceContext,
    SelectionItem,
    Skipped,
    TokenKind,
    check_selection,
    parse_token,
    resolve_selection,
)
from inventory.selectors import Scope, ScopeKind, distribution_lists_with_addresses
from templates_app.models import AddAttachment, MailTemplate

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
    "report_scope",
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


def report_scope_refusal(
    *,
    report_scope: str,
    customers: Iterable[Customer | int],
    recipients: Sequence[str],
    user: User | AnonymousUser | None = None,
    previous: str | None = None,
) -> dict[str, list[str]]:
    """Why an action may not give its other addresses (system, typed, distribution-list
    addresses) this report scope, per form field; {} when it may.

    "All customers (internal)" sends every customer's records: only an administrator may
    choose it (`user`; an action that had it already, `previous`, keeps it), and only
    system addresses may receive it, so a selection with typed addresses or distribution
    lists with extra addresses is refused. "Chosen customers" needs a customer. Tokens
    that do not parse are left to the recipients' own check.
    """
    errors: dict[str, list[str]] = {}
    if report_scope == ReportScope.CUSTOMERS and not list(customers):
        errors["report_scope_customers"] = [
            _("Choose at least one customer: the report covers the chosen customers' records.")
        ]
    if report_scope != ReportScope.ALL:
        return errors
    if user is not None and previous != ReportScope.ALL and not is_administrator(user):
        errors.setdefault("report_scope", []).append(
            _(
                "Only administrators may choose “all customers (internal)”: the report "
                "then holds every customer's records."
            )
        )
    items: list[SelectionItem] = []
    for token in recipients:
        try:
            items.append(parse_token(token))
        except ValidationError:
            continue
    outside = [
        _("the typed address %(address)s") % {"address": item.email}
        for item in items
        if item.kind == TokenKind.ADDRESS
    ]
    list_ids = [item.pk for item in items if item.kind == TokenKind.LIST and item.pk]
    if list_ids:
        outside += [
            _("the extra addresses of the distribution list “%(name)s”")
            % {"name": distribution_list.name}
            for distribution_list in distribution_lists_with_addresses(list_ids)
        ]
    if outside:
        errors.setdefault("report_scope", []).append(
            _(
                "“All customers (internal)” may only go to system addresses (users and "
                "customers always get their own records), but %(recipients)s would receive "
                "every customer's records. Remove them, or choose “no report” or chosen "
                "customers."
            )
            % {"recipients": ", ".join(outside)}
        )
    return errors


def _validate(
    action: Action,
    *,
    user: User | None = None,
    customers: Sequence[Customer | int] = (),
    previous_scope: str | None = None,
) -> None:
    errors: dict[str, list] = {}
    try:
        action.full_clean()
    except ValidationError as exc:
        errors.update(exc.message_dict)
    for name, messages in report_scope_refusal(
        report_scope=action.report_scope,
        customers=customers,
        recipients=action.recipients or [],
        user=user,
        previous=previous_scope,
    ).items():
        errors.setdefault(name, []).extend(messages)
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


def _report_customers(action: Action, values: Mapping) -> list[Customer | int]:
    """The customers of "chosen customers" as given, else as stored; none for another
    scope (a choice left behind would come back unseen when the scope is switched)."""
    if action.report_scope != ReportScope.CUSTOMERS:
        return []
    if "report_scope_customers" in values:
        return list(values["report_scope_customers"] or [])
    return list(action.report_scope_customers.all()) if action.pk else []


@transaction.atomic
def action_create(
    *, values: Mapping, user: User | None = None, now: dt.datetime | None = None
) -> Action:
    """Create an action; ValidationError (per field) when it does not fit or can never fire."""
    action = Action()
    _apply(action, values)
    customers = _report_customers(action, values)
    _validate(action, user=user, customers=customers)
    action.next_due_at = compute_next_due(action, after=now or timezone.now())
    action.save()
    action.report_scope_customers.set(customers)
    return action


@transaction.atomic
def action_update(
    *, action: Action, values: Mapping, user: User | None = None, now: dt.datetime | None = None
) -> Action:
    previous_scope = (
        Action.objects.filter(pk=action.pk).values_list("report_scope", flat=True).first()
    )
    _apply(action, values)
    customers = _report_customers(action, values)
    _validate(action, user=user, customers=customers, previous_scope=previous_scope)
    action.next_due_at = compute_next_due(action, after=now or timezone.now())
    action.save()
    action.report_scope_customers.set(customers)
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
    # Not an f-string: gettext's extractor does not look inside one.
    suffix = " " + _("(copy)")
    return description[: max_length - len(suffix)] + suffix


@transaction.atomic
def action_duplicate(*, action: Action, now: dt.datetime | None = None) -> Action:
    """A copy with every setting, unpublished so it does not send before it is checked."""
    values = {name: getattr(action, name) for name in EDITABLE_FIELDS}
    values["report_scope_customers"] = list(action.report_scope_customers.all())
    if report_scope_refusal(
        report_scope=action.report_scope,
        customers=values["report_scope_customers"],
        recipients=action.recipients,
    ):
        # A list gained extra addresses since "all customers" was chosen: the copy, opened
        # for checking, starts without a report rather than failing.
        values["report_scope"] = ReportScope.NONE
    values["description"] = copy_description(action.description)
    values["published"] = False
    return action_create(values=values, now=now)


@transaction.atomic
def action_delete(*, action: Action) -> None:
    action.delete()


# --- audience -------------------------------------------------------------------------------


def audience_context(*, template: MailTemplate, today: dt.date) -> AudienceContext:
    """What the audiences of a run of the template depend on: its report's kind of
    records, its filter and window, and the run's day."""
    provider = template.report_provider if template.report else None
    return AudienceContext(
        report_kind=provider.records if provider is not None else None,
        due_filter=template.due_filter,
        window_days=template.due_window_days,
        today=today,
    )


@dataclass(frozen=True)
class AudienceMember:
    """A recipient the next run would mail, and how many report rows the mail would list
    (None: the template has no report)."""

    email: str
    owner: str
    rows: int | None


@dataclass(frozen=True)
class AudiencePreview:
    """The audience of the next run: how many mails it would send, the first recipients
    with their rows, and who would get none and why."""

    mails: int
    recipients: list[AudienceMember] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def audience_preview(
    *,
    template: MailTemplate,
    recipients: Sequence[str | SelectionItem],
    send_without_attachments: bool,
    today: dt.date,
    limit: int = 20,
    other_scope: Scope | None = None,
) -> AudiencePreview:
    """The figures a run of these recipients would give today, without rendering: the
    same resolution as the run (inventory.recipients.resolve_selection with the
    template's audience context) and each report's rows counted with COUNT queries grouped
    by scope (the provider's count_rows_many), so a few queries whatever the audience's
    size. Bad tokens raise ValidationError as the run's resolution would fail.

    A mail that the run would leave out for lack of its report attachment (an empty
    report the template does not attach, no report for the recipient's scope) is counted
    as skipped unless send_without_attachments."""
    resolution = resolve_selection(
        recipients,
        other_scope=other_scope,
        audience=audience_context(template=template, today=today),
        per_report=True,
    )
    skipped = list(resolution.skipped)
    provider = template.report_provider if template.report else None
    if template.report and provider is None:
        # Every render would fail: nothing would be sent.
        reason = _("The report “%(report)s” is not available.") % {"report": template.report}
        skipped += [
            Skipped(source=r.source, label=r.email, reason=reason) for r in resolution.recipients
        ]
        return AudiencePreview(mails=0, skipped=skipped)
    rows: dict[Scope, int] = {}
    if provider is not None and resolution.recipients:
        rows = provider.count_rows_many(
            scopes=[recipient.scope for recipient in resolution.recipients],
            due_filter=template.due_filter,
            window_days=template.due_window_days,
            today=today,
        )
    attaches = provider is not None and template.add_attachment == AddAttachment.REPORT
    mails = 0
    members: list[AudienceMember] = []
    for recipient in resolution.recipients:
        count = rows.get(recipient.scope, 0) if provider is not None else None
        # As templates_app.services.render_for_recipient leaves the attachment out.
        without_attachment = ""
        if attaches and recipient.scope.kind == ScopeKind.NONE:
            without_attachment = _(
                "There is no report for this recipient (report scope: no report)."
            )
        elif attaches and not count and not template.empty_attachment_allowed:
            without_attachment = _("The report is empty and the template attaches no empty report.")
        if without_attachment and not send_without_attachments:
            skipped.append(
                Skipped(
                    source=recipient.source,
                    label=recipient.email,
                    reason=_("not sent without an attachment: %(reason)s")
                    % {"reason": without_attachment},
                )
            )
            continue
        mails += 1
        if len(members) < limit:
            members.append(AudienceMember(email=recipient.email, owner=recipient.owner, rows=count))
    return AudiencePreview(mails=mails, recipients=members, skipped=skipped)
