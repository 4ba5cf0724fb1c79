import logging

from celery import current_app as celery_app
from django.apps import apps
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import JsonResponse
from django.middleware.csrf import REASON_NO_CSRF_COOKIE
from django.shortcuts import redirect, render
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from calmail.common.navigation import sections_for

logger = logging.getLogger(__name__)


def home(request):
    """Open the first section the user may see; users without a role get an explanation."""
    sections = sections_for(request.user)
    if sections:
        return redirect(sections[0]["url"])
    return render(request, "common/no_role.html", status=403)


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: the refused form as a page of the site, in the user's language."""
    return render(
        request, "403_csrf.html", {"no_cookie": reason == REASON_NO_CSRF_COOKIE}, status=403
    )


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        logger.warning("Health check: database unavailable: %s", exc.__class__.__name__)
        return exc.__class__.__name__
    return None


def _check_broker() -> str | None:
    # The URL from settings, not Celery's cached config: Celery prefers the
    # CELERY_BROKER_URL environment variable over settings once it has read them.
    try:
        with celery_app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        logger.warning("Health check: broker unavailable: %s", exc.__class__.__name__)
        return exc.__class__.__name__
    return None


@login_not_required
@never_cache
@require_GET
def healthz(request):
    """Database and broker reachable? 200 or 503, no login; names no hosts or credentials."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    healthy = all(error is None for error in checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        "checks": {
            name: ("ok" if error is None else f"error: {error}") for name, error in checks.items()
        },
    }
    if healthy:
        details = _app_details()
        if details:
            body["details"] = details
    return JsonResponse(body, status=200 if healthy else 503)


def _app_details() -> dict:
    """What apps add to /healthz without deciding its status (a failing calServer sync):
    an AppConfig names a function returning a dict in `health_details`. One that fails
    is reported by its class, never breaks the check."""
    details: dict = {}
    for config in apps.get_app_configs():
        path = getattr(config, "health_details", None)
        if not path:
            continue
        try:
            details.update(import_string(path)())
        except Exception as exc:
            logger.warning(
                "Health check: details of %s failed: %s", config.label, exc.__class__.__name__
            )
            details[config.label] = f"error: {exc.__class__.__name__}"
    return details
