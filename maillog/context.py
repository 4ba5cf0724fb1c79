"""Who is acting right now: the signed-in user of the current request, else the system.

Services record the actor of their audit entries from here, so a service that already
exists did not need a new `actor` argument threaded through every view, bulk action and
command that calls it. Celery tasks and management commands run outside a request and
are recorded as the system.
"""

import contextvars

_request = contextvars.ContextVar("maillog_request", default=None)


class CurrentActorMiddleware:
    """Makes the request's user the actor of log entries written while it is handled."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def current_user():
    request = _request.get()
    if request is None:
        return None
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return user
