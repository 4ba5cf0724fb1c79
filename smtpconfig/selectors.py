"""Reads of SMTP configurations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from smtpconfig.models import SmtpConfiguration

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


def smtp_configuration_list(*, user: User | AnonymousUser) -> QuerySet[SmtpConfiguration]:
    """Configurations the user may see: all with the view permission, none without."""
    if not user.has_perm("smtpconfig.view_smtpconfiguration"):
        return SmtpConfiguration.objects.none()
    return SmtpConfiguration.objects.all()


def smtp_configuration_default() -> SmtpConfiguration | None:
    return SmtpConfiguration.objects.filter(is_default=True).first()


def active_configurations() -> QuerySet[SmtpConfiguration]:
    """What forms offer for new mail: deactivated configurations take none."""
    return SmtpConfiguration.objects.filter(is_active=True)
