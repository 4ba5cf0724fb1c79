"""Reads of templates, and who may see and change which.

Visibility follows the owner group (docs/design.md 5.6.1 "Group"): administrators see every
template; others with the view permission see the templates of their own groups and
those without an owner group. Changing needs the change permission and, except for
administrators, a template of one of the user's own groups.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Prefetch, Q, QuerySet

from calmail.common.roles import is_administrator
from inventory.models import Customer
from inventory.selectors import ScopeKind
from templates_app.models import MailTemplate, MailTemplateTranslation

if TYPE_CHECKING:
    # For the annotation only.
    from inventory.recipients import Recipient

VIEW = "templates_app.view_mailtemplate"
ADD = "templates_app.add_mailtemplate"
CHANGE = "templates_app.change_mailtemplate"
DELETE = "templates_app.delete_mailtemplate"


def visible_templates(*, user: User | AnonymousUser) -> QuerySet[MailTemplate]:
    if not user.has_perm(VIEW):
        return MailTemplate.objects.none()
    if is_administrator(user):
        return MailTemplate.objects.all()
    return MailTemplate.objects.filter(
        Q(owner_group__isnull=True) | Q(owner_group__in=user.groups.all())
    )


def template_list(*, user: User | AnonymousUser) -> QuerySet[MailTemplate]:
    return visible_templates(user=user).select_related("owner_group")


def template_with_texts(*, user: User | AnonymousUser, pk: int) -> MailTemplate:
    """One visible template with its translations (raises DoesNotExist otherwise)."""
    return (
        visible_templates(user=user)
        .select_related("owner_group")
        .prefetch_related(
            Prefetch("translations", queryset=MailTemplateTranslation.objects.order_by("language"))
        )
        .get(pk=pk)
    )


class TemplateRights:
    """What one user may do with templates, worked out once (a list page asks per row)."""

    def __init__(self, user: User | AnonymousUser) -> None:
        self.user = user
        self.administrator = is_administrator(user)
        self.group_ids = (
            set() if self.administrator else set(user.groups.values_list("pk", flat=True))
        )

    def _owns(self, template: MailTemplate) -> bool:
        return self.administrator or template.owner_group_id in self.group_ids

    def can_change(self, template: MailTemplate) -> bool:
        return self.user.has_perm(CHANGE) and self._owns(template)

    def can_delete(self, template: MailTemplate) -> bool:
        return self.user.has_perm(DELETE) and self._owns(template)

    def can_add(self) -> bool:
        return self.user.has_perm(ADD)


def deletable_templates(*, user: User | AnonymousUser) -> QuerySet[MailTemplate]:
    if not user.has_perm(DELETE):
        return MailTemplate.objects.none()
    if is_administrator(user):
        return MailTemplate.objects.all()
    return MailTemplate.objects.filter(owner_group__in=user.groups.all())


def recipient_details(recipient: "Recipient") -> dict[str, dict]:
    """The customer or user behind a recipient, as plain data for the placeholders."""
    return recipients_details([recipient])[recipient]


def recipients_details(recipients: "Sequence[Recipient]") -> "dict[Recipient, dict[str, dict]]":
    """recipient_details() for many recipients: one query for their customers, one for
    their users (a fan-out renders a chunk at once)."""
    # A customer or user scope always has an id (Scope.__post_init__).
    customer_ids = {
        r.scope.id
        for r in recipients
        if r.scope.kind == ScopeKind.CUSTOMER and r.scope.id is not None
    }
    user_ids = {
        r.scope.id for r in recipients if r.scope.kind == ScopeKind.USER and r.scope.id is not None
    }
    customers: dict[int, dict] = {}
    if customer_ids:
        rows = Customer.objects.filter(pk__in=customer_ids).values_list(
            "pk", "number", "name", "city"
        )
        customers = {
            pk: {"number": number, "name": name, "city": city} for pk, number, name, city in rows
        }
    users: dict[int, dict] = {}
    if user_ids:
        people = (
            get_user_model()
            .objects.filter(pk__in=user_ids)
            .values_list("pk", "first_name", "last_name", "username", "email")
        )
        for pk, first_name, last_name, username, email in people:
            full = f"{first_name} {last_name}".strip()
            users[pk] = {"name": full or username, "email": email}
    details = {}
    for recipient in recipients:
        scope = recipient.scope
        customer = customers.get(scope.id or 0) if scope.kind == ScopeKind.CUSTOMER else None
        user = users.get(scope.id or 0) if scope.kind == ScopeKind.USER else None
        details[recipient] = {"customer": dict(customer or {}), "user": dict(user or {})}
    return details
