"""Sign-ins (their own category), failed sign-ins and locks (security events)."""

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext_noop

from calmail.common.network import masked_network
from maillog.models import Category, Level, LogEntry
from maillog.services import log_event

SIGNED_IN_MESSAGE = gettext_noop("%(user)s signed in")


@receiver(user_logged_in, dispatch_uid="maillog_login")
def record_login(sender, request, user, **kwargs):
    # Its own category, hidden in the Log unless asked for; failed sign-ins and locks
    # stay security events.
    log_event(
        category=Category.SIGN_IN,
        level=Level.INFO,
        message=SIGNED_IN_MESSAGE,
        params={"user": user.get_username()},
        actor=user,
        obj=user,
        details={"network": masked_network(request)},
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
        details={"network": masked_network(request)},
    )


LOCKOUT_MESSAGE = gettext_noop(
    "Sign-in as %(user)s locked for %(minutes)s minutes after too many failed attempts"
)


@receiver(user_locked_out, dispatch_uid="maillog_locked_out")
def record_lockout(sender, request=None, username=None, ip_address=None, **kwargs):
    # django-axes signals every refused attempt during a lock; the Log records the lock
    # once per cool-off, not each knock on the locked door.
    username = str(username or "")[:150]
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    if LogEntry.objects.filter(
        category=Category.SECURITY, message=LOCKOUT_MESSAGE, params__user=username, time__gte=since
    ).exists():
        return
    log_event(
        category=Category.SECURITY,
        level=Level.WARNING,
        message=LOCKOUT_MESSAGE,
        params={
            "user": username,
            "minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
        },
        actor=None,
        actor_label="",
        details={"network": masked_network(request)},
    )
