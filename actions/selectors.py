"""Reads of actions and runs, and who may see and change which.

Only members of the action's group (with the role's permission) and administrators see
and manage an action and its runs.

The sent count is counted from the outbox (mails of the action with status sent) rather
than kept in a counter: the delivery engine marks mails sent from many workers at once,
and a count derived from those rows is right by construction, with no hook in the engine
and nothing to drift. It is one grouped subquery per list page, using the outbox's index
on the action foreign key. The outbox retention deletes old mail; the sent mails it
deletes are added to Action.purged_sent_count in the same transaction, so the count is
purged + live and never drops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Count, F, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from actions.models import Action, ActionRun, ReportScope
from calmail.common.roles import is_administrator
from inventory.selectors import Scope
from mailbox.models import OutboxMessage, Status

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

VIEW = "actions.view_action"
ADD = "actions.add_action"
CHANGE = "actions.change_action"
DELETE = "actions.delete_action"
VIEW_RUNS = "actions.view_actionrun"


def visible_actions(*, user: User | AnonymousUser) -> QuerySet[Action]:
    if not user.is_authenticated or not user.has_perm(VIEW):
        return Action.objects.none()
    if is_administrator(user):
        return Action.objects.all()
    return Action.objects.filter(group__in=user.groups.all())


def with_sent_count(queryset: QuerySet[Action]) -> QuerySet[Action]:
    sent = (
        OutboxMessage.objects.filter(action=OuterRef("pk"), status=Status.SENT)
        .order_by()
        .values("action")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return queryset.annotate(
        sent_count=F("purged_sent_count") + Coalesce(Subquery(sent, output_field=IntegerField()), 0)
    )


def action_list(*, user: User | AnonymousUser) -> QuerySet[Action]:
    return with_sent_count(
        visible_actions(user=user).select_related("group", "template", "smtp_configuration")
    )


def sent_count(action: Action) -> int:
    return (
        with_sent_count(Action.objects.filter(pk=action.pk))
        # django-stubs cannot see the annotation made in with_sent_count.
        .values_list("sent_count", flat=True)  # type: ignore[misc]
        .get()
    )


def run_list(*, user: User | AnonymousUser, action: Action) -> QuerySet[ActionRun]:
    if not user.has_perm(VIEW_RUNS) or not visible_actions(user=user).filter(pk=action.pk).exists():
        return ActionRun.objects.none()
    return action.runs.all()


class ActionRights:
    """What one user may do with actions, worked out once (a list page asks per row)."""

    def __init__(self, user: User | AnonymousUser) -> None:
        self.user = user
        self.administrator = is_administrator(user)
        self.group_ids = (
            set() if self.administrator else set(user.groups.values_list("pk", flat=True))
        )

    def _owns(self, action: Action) -> bool:
        return self.administrator or action.group_id in self.group_ids

    def can_change(self, action: Action) -> bool:
        return self.user.has_perm(CHANGE) and self._owns(action)

    def can_delete(self, action: Action) -> bool:
        return self.user.has_perm(DELETE) and self._owns(action)

    def can_add(self) -> bool:
        return self.user.has_perm(ADD)


def action_other_scope(action: Action) -> Scope:
    """The report scope of the action's addresses that belong to no customer or user
    (inventory.recipients.resolve_selection's other_scope). "Chosen customers" whose
    customers are all gone is no report."""
    if action.report_scope == ReportScope.ALL:
        return Scope.all()
    if action.report_scope == ReportScope.CUSTOMERS:
        ids = list(action.report_scope_customers.values_list("pk", flat=True))
        return Scope.customers(ids) if ids else Scope.none()
    return Scope.none()
