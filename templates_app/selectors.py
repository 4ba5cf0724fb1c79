"""Reads of templates, and who may see and change which.

Visibility follows the owner group (docs/design.md 5.6.1 "Group"): administrators see every
template; others with the view permission see the templates of their own groups and
those without an owner group. Changing needs the change permission and, except for
administrators, a template of one of the user's own groups.
"""

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
    details: dict[str, dict] = {"customer": {}, "user": {}}
    scope = recipient.scope
    # A customer or user scope always has an id (Scope.__post_init__): pk is never None.
    if scope.kind == ScopeKind.CUSTOMER:
        customer = (
            Customer.objects.filter(pk=scope.id)  # type: ignore[misc]
            .values("number", "name", "city")
            .first()
        )
        details["customer"] = dict(customer or {})
    elif scope.kind == ScopeKind.USER:
        user = (
            get_user_model()
            .objects.filter(pk=scope.id)  # type: ignore[misc]
            .values("first_name", "last_name", "username", "email")
            .first()
        )
        if user:
            full = f"{user['first_name']} {user['last_name']}".strip()
            details["user"] = {"name": full or user["username"], "email": user["email"]}
    return details
