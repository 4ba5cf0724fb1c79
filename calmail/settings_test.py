"""Settings for the test suite: production settings with throwaway secrets.

DATABASE_URL and CELERY_BROKER_URL still come from the environment, so CI runs the
same suite against PostgreSQL and Redis.
"""

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

# Fresh keys per run: nothing secret is ever committed, and no test depends on a key value.
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("FERNET_KEYS", Fernet.generate_key().decode())
os.environ.setdefault(
    "CALMAIL_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test")
)

from calmail.settings import *  # noqa: F403

# The browser tests talk plain HTTP to a live server on localhost.
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
# No collectstatic before tests: serve static files from their source folders.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not the shared-cache in-memory default: threads and worker processes in the
    # tests then get SQLite's real locking (busy timeout) instead of "table is locked".
    # One file per test process, so parallel runs never share (and delete) each other's.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}  # noqa: F405
