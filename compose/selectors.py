"""Reads for composing: a user's drafts and what the user may pick in the form."""

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from compose.models import Draft
from smtpconfig.models import SmtpConfiguration
from smtpconfig.selectors import smtp_configuration_list
from templates_app.models import MailTemplate
from templates_app.selectors import visible_templates


def draft_list(*, user: User) -> QuerySet[Draft]:
    """A user's own drafts: nobody else sees them, administrators included."""
    return Draft.objects.filter(owner=user)


def draft_get(*, user: User, pk: int) -> Draft:
    """The user's draft with its attachments, or 404 (also for another user's draft)."""
    return get_object_or_404(draft_list(user=user).prefetch_related("attachments"), pk=pk)


def usable_configurations(*, user: User | AnonymousUser) -> QuerySet[SmtpConfiguration]:
    # Deactivated configurations take no new mail (mailbox.services refuses them).
    return smtp_configuration_list(user=user).filter(is_active=True).order_by("-is_default", "name")


def usable_templates(*, user: User | AnonymousUser) -> QuerySet[MailTemplate]:
    return visible_templates(user=user).order_by("name")
