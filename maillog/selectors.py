"""Reads of the log: which entries a user may see."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.contenttypes.models import ContentType
from django.db.models import Q, QuerySet

from calmail.common.roles import is_administrator, team_groups
from maillog.models import LogEntry

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

VIEW_PERMISSION = "maillog.view_logentry"


def _smtp_configuration_type() -> ContentType:
    # Cached by ContentType's manager: no query per page view.
    return ContentType.objects.get_by_natural_key("smtpconfig", "smtpconfiguration")


def log_entry_list(*, user: User | AnonymousUser) -> QuerySet[LogEntry]:
    """Administrators see every entry. Others with the view permission see the entries of
    their team groups and of their own actions, except audit entries about SMTP
    configurations (administrators only: they name servers and accounts)."""
    if not user.is_authenticated or not user.has_perm(VIEW_PERMISSION):
        return LogEntry.objects.none()
    entries = LogEntry.objects.all()
    if is_administrator(user):
        return entries
    return entries.filter(Q(group__in=team_groups(user)) | Q(actor=user)).exclude(
        ~Q(audit_action=""), content_type=_smtp_configuration_type()
    )
