"""Logins and failed logins (security events)."""

import ipaddress

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.utils.translation import gettext_noop

from maillog.models import Category, Level
from maillog.services import log_event


def masked_ip(request) -> str:
    """The client's network, not its address: enough to tell an office from an unknown
    place, not enough to identify a person (IPv4 /24, IPv6 /48), as data protection asks."""
    address = (request.META.get("REMOTE_ADDR") or "") if request is not None else ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ""
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


@receiver(user_logged_in, dispatch_uid="maillog_login")
def record_login(sender, request, user, **kwargs):
    log_event(
        category=Category.SECURITY,
        level=Level.INFO,
        message=gettext_noop("%(user)s signed in"),
        params={"user": user.get_username()},
        actor=user,
        obj=user,
        details={"network": masked_ip(request)},
    )


@receiver(user_login_failed, dispatch_uid="maillog_login_failed")
def record_login_failed(sender, credentials, request=None, **kwargs):
    # The credentials dict is already scrubbed of the password by Django; only the
    # username is kept, and only as the text the person typed.
    username = str(credentials.get("username", ""))[:150]
    log_event(
        category=Category.SECURITY,
        level=Level.WARNING,
        message=gettext_noop("Failed sign-in as %(user)s"),
        params={"user": username},
        actor=None,
        # Nobody signed in: neither a user nor the system did this.
        actor_label="",
        details={"network": masked_ip(request)},
    )
