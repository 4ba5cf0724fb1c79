"""`make run` printed every Django log line twice and two tracebacks for each 403: Django's
own logging configuration gave the "django" logger a console handler besides the root's.
A fresh process, configured from settings as runserver and the workers are, must print
each record once."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import logging

    import django

    django.setup()

    from django.core.exceptions import PermissionDenied
    from django.http import HttpResponseForbidden, HttpResponseServerError
    from django.test import RequestFactory
    from django.utils.log import log_response

    request = RequestFactory().get("/x/")
    logging.getLogger("django.request").warning("marker-request")
    logging.getLogger("django.server").info("marker-server")
    logging.getLogger("django").info("marker-django")
    logging.getLogger("mailbox.delivery").info("marker-ours")
    try:
        raise PermissionDenied("no")
    except PermissionDenied as exc:
        log_response("marker-403 %s", "/x/", response=HttpResponseForbidden(),
                     request=request, exception=exc)
    try:
        raise RuntimeError("kaputt")
    except RuntimeError as exc:
        log_response("marker-500 %s", "/x/", response=HttpResponseServerError(),
                     request=request, exception=exc)
    """
)


def test_logging_from_settings_prints_each_record_once(tmp_path):
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "calmail.settings",
        # As `make run`: DEBUG on, which switched Django's own console handler on.
        "DEBUG": "true",
        "CALMAIL_VAR_DIR": str(tmp_path),
        "LOG_LEVEL": "INFO",
    }
    for name in ("SECRET_KEY", "FERNET_KEYS", "DJANGO_ALLOW_ASYNC_UNSAFE"):
        environment.pop(name, None)

    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=Path(__file__).resolve().parents[2],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    lines = result.stderr.splitlines()
    counts = {
        marker: sum(marker in line for line in lines)
        for marker in (
            "marker-request",
            "marker-server",
            "marker-django",
            "marker-ours",
            "marker-403",
            "marker-500",
        )
    }
    assert counts == dict.fromkeys(counts, 1), result.stderr
    # A refusal is one line; a server error keeps its one traceback.
    assert result.stderr.count("Traceback") == 1, result.stderr
    assert "RuntimeError: kaputt" in result.stderr
    assert "PermissionDenied" not in result.stderr
