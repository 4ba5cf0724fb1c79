"""calmail settings: one module, configured from the environment (see README, "Production")."""

import datetime
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key
from django.utils.translation import gettext_lazy as _

from calmail.common.env import (
    env_bool,
    env_int,
    env_list,
    env_secret,
    env_str,
    generated_dev_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# Everything the embedded run writes (SQLite, broker queue, keys, media) lives here; git ignores it.
VAR_DIR = Path(env_str("CALMAIL_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY (or SECRET_KEY_FILE) to a long random value; "
            "only DEBUG=true generates one for development."
        )
    SECRET_KEY = generated_dev_secret(VAR_DIR / "keys" / "secret_key", get_random_secret_key)

# Fernet keys for secrets at rest (SMTP passwords): the first encrypts, all decrypt,
# so a new key can be put in front and old ciphertext rotated with rotate_fernet_keys.
FERNET_KEYS = [
    key.strip()
    for key in (env_secret("FERNET_KEYS") or "").replace("\n", ",").split(",")
    if key.strip()
]
if not FERNET_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "FERNET_KEYS is not set. Set FERNET_KEYS (or FERNET_KEYS_FILE) to one or more "
            "comma-separated Fernet keys; generate one with: python -c "
            '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        )
    FERNET_KEYS = [
        generated_dev_secret(
            VAR_DIR / "keys" / "fernet_key", lambda: Fernet.generate_key().decode()
        )
    ]

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_filters",
    "django_tables2",
    "crispy_forms",
    "crispy_bootstrap5",
    "calmail.common",
    "maillog",
    "smtpconfig",
    "inventory",
    "templates_app",
    "actions",
    "mailbox",
    "compose",
    "accounts",
    "overview",
    "calserver",
    "imports",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "calmail.common.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Log entries written during a request name its user as the actor.
    "maillog.context.CurrentActorMiddleware",
    # Every page needs a login unless its view is marked @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "calmail.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "calmail.common.context_processors.navigation",
            ],
        },
    },
]

WSGI_APPLICATION = "calmail.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'calmail.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one SQLite file: WAL lets readers run beside the writer,
    # IMMEDIATE transactions take the write lock up front instead of failing mid-transaction.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # SQLite has no covering indexes: the outbox's INCLUDE columns (for the overview's
    # index-only counts on PostgreSQL) are left out there, which is all this warns about.
    _SQLITE_SILENCED = ["models.W040"]
else:
    _SQLITE_SILENCED = []

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out account or client address before any password check.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
# The overview (overview.views), through "home": users without the outbox permission land
# on the first section they may open instead.
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Internationalisation: German by default, English switchable.
LANGUAGE_CODE = env_str("LANGUAGE_CODE", "de")
LANGUAGES = [("de", _("German")), ("en", _("English"))]
if LANGUAGE_CODE not in dict(LANGUAGES):
    raise ImproperlyConfigured(f"LANGUAGE_CODE must be one of de, en, not {LANGUAGE_CODE!r}.")
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "Europe/Berlin")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Security. Secure defaults whenever DEBUG is off; each can be relaxed explicitly,
# e.g. for a plain-HTTP trial behind docker compose.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The client's address as the proxy in front reports it (sign-in throttling, the Log's
# network of a sign-in). Unset: the TCP peer (REMOTE_ADDR). Behind one reverse proxy that
# appends to X-Forwarded-For: CALMAIL_CLIENT_IP_HEADER=HTTP_X_FORWARDED_FOR.
CALMAIL_CLIENT_IP_HEADER = env_str("CALMAIL_CLIENT_IP_HEADER", "")
# How many proxies append to that header: the client is that many entries from its end.
CALMAIL_TRUSTED_PROXY_COUNT = env_int("CALMAIL_TRUSTED_PROXY_COUNT", 1)

# Sign-in throttling (django-axes): after this many failed sign-ins for one user name, or
# from one client address, further attempts are refused for the cool-off, even with the
# right password. Administrators unlock users under "Users & teams".
AXES_FAILURE_LIMIT = env_int("CALMAIL_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env_int("CALMAIL_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "calmail.common.network.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.views.locked_out"
AXES_RESET_ON_SUCCESS = True
# A lock ends the cool-off after it began, as the lockout page says, however often
# someone keeps trying meanwhile.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Failed attempts are in calmail's own Log (maillog.signals); no second access log.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False
SECURE_REFERRER_POLICY = "same-origin"
# A refused form (expired page, cookies off) gets the site's 403 page, in the user's language.
CSRF_FAILURE_VIEW = "calmail.common.views.csrf_failure"
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = [
    # HSTS subdomains and preload affect every host of the domain: the operator's
    # decision (SECURE_HSTS_INCLUDE_SUBDOMAINS, SECURE_HSTS_PRELOAD), not ours.
    "security.W005",
    "security.W021",
    *_SQLITE_SILENCED,
]

# django-tables2 / crispy-forms
DJANGO_TABLES2_TEMPLATE = "django_tables2/bootstrap5.html"
CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# Celery: the embedded default is kombu's filesystem transport under var/; Redis in production.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "processed_folder": str(_queue_dir / "processed"),
        # kombu's default is ./control, i.e. whatever directory the worker starts in.
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
else:
    # Must exceed the longest task time limit, or Redis redelivers a running task.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 900
CELERY_TASK_SOFT_TIME_LIMIT = 840
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fix-up closes the database connection around every task unless this is
# set; reconnecting to PostgreSQL cost 11-18 ms per (often empty) delivery task.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 100)
# How often beat's sweeper looks for due mail whose task got lost, scheduled mail whose
# time came, and mail of dead workers. Retries are nudged when due anyway.
CALMAIL_SWEEP_SECONDS = env_int("CALMAIL_SWEEP_SECONDS", 60)
if CALMAIL_SWEEP_SECONDS < 5:
    raise ImproperlyConfigured("CALMAIL_SWEEP_SECONDS must be at least 5.")
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    # Turns due action slots into runs (exactly once per slot, however many beats run).
    "actions-tick": {
        "task": "actions.tick",
        "schedule": 30.0,
        # A tick that waited out a broker outage is stale; the next one comes anyway.
        "options": {"expires": 25},
    },
    # Takes back mail of dead workers, queues scheduled mail, nudges delivery of due mail.
    "mailbox-sweep": {
        "task": "mailbox.sweep",
        "schedule": float(CALMAIL_SWEEP_SECONDS),
        # A sweep that waited out a broker outage is stale; the next one comes anyway.
        "options": {"expires": max(1, CALMAIL_SWEEP_SECONDS - 5)},
    },
    # Starts the calServer sync when its interval has passed (calserver.tasks).
    "calserver-sync-due": {
        "task": "calserver.sync_due",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Deletes log entries past their retention, in small batches.
    "maillog-purge": {
        "task": "maillog.purge",
        "schedule": crontab(hour=3, minute=17),
        "options": {"expires": 3600},
    },
    # Deletes finished outbox mail past its retention, in small batches.
    "mailbox-purge": {
        "task": "mailbox.purge",
        "schedule": crontab(hour=3, minute=17),
        "options": {"expires": 3600},
    },
}
CELERY_TIMEZONE = TIME_ZONE

EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "calmail@localhost")

# calmail
# Extra CA certificates (PEM) trusted for SMTP TLS besides the system store, e.g. an internal CA.
CALMAIL_SMTP_CA_FILE = env_str("CALMAIL_SMTP_CA_FILE")
# OAuth 2.0 sign-in to SMTP (smtpconfig.transport.oauth). Microsoft's sign-in host; another
# cloud (e.g. https://login.microsoftonline.us) or a test double may replace it.
CALMAIL_OAUTH_MICROSOFT_AUTHORITY = env_str(
    "CALMAIL_OAUTH_MICROSOFT_AUTHORITY", "https://login.microsoftonline.com"
)
# A PEM bundle of the CAs trusted for token endpoints instead of the bundled Mozilla list
# (certifi), e.g. behind a TLS-inspecting proxy. Empty: the bundled list.
CALMAIL_OAUTH_CA_FILE = env_str("CALMAIL_OAUTH_CA_FILE")
# calServer connector (calserver.client): tries per request on 429/5xx/timeouts, the
# first backoff in seconds (doubling), and the longest Retry-After honoured.
CALMAIL_CALSERVER_RETRIES = env_int("CALMAIL_CALSERVER_RETRIES", 4)
CALMAIL_CALSERVER_BACKOFF_SECONDS = float(env_str("CALMAIL_CALSERVER_BACKOFF_SECONDS", "2"))
CALMAIL_CALSERVER_MAX_RETRY_AFTER_SECONDS = env_int(
    "CALMAIL_CALSERVER_MAX_RETRY_AFTER_SECONDS", 300
)
# Where recipients reach calmail: absolute download links in mails start with this.
CALMAIL_BASE_URL = env_str("CALMAIL_BASE_URL", "http://127.0.0.1:8000")
CALMAIL_ATTACHMENT_MAX_BYTES = env_int("CALMAIL_ATTACHMENT_MAX_BYTES", 20_000_000)
CALMAIL_LINK_TTL_DAYS = env_int("CALMAIL_LINK_TTL_DAYS", 30)
# How many files one composed mail may carry (each at most CALMAIL_ATTACHMENT_MAX_BYTES).
CALMAIL_COMPOSE_MAX_FILES = env_int("CALMAIL_COMPOSE_MAX_FILES", 10)
# Seconds to wait before retry 1, 2, …; a mail fails for good after the last.
CALMAIL_RETRY_BACKOFF = [
    int(s) for s in env_list("CALMAIL_RETRY_BACKOFF", ["60", "300", "1800", "7200", "21600"])
]
CALMAIL_DELIVERY_BATCH_SIZE = env_int("CALMAIL_DELIVERY_BATCH_SIZE", 50)
# SMTP sessions one worker process holds at once for one configuration (threads), within
# the configuration's "parallel connections" across all workers. Each session has a
# database connection of its own: PostgreSQL's max_connections must allow worker
# processes x this (plus the web's).
CALMAIL_DELIVERY_SESSIONS_PER_WORKER = env_int("CALMAIL_DELIVERY_SESSIONS_PER_WORKER", 10)
# A row "sending" longer than this belongs to a dead worker and is taken back by the sweeper.
CALMAIL_SENDING_LEASE_SECONDS = env_int("CALMAIL_SENDING_LEASE_SECONDS", 300)
# A delivery task stops claiming new batches after this long and hands over to a new task,
# so configurations take turns and no task comes near CELERY_TASK_SOFT_TIME_LIMIT.
CALMAIL_DELIVERY_RUN_SECONDS = env_int("CALMAIL_DELIVERY_RUN_SECONDS", 120)
# PostgreSQL: commit each mail's outcome without waiting for the WAL flush (a database
# crash may then resend the last moment's mails; none is lost). See mailbox/delivery.py.
CALMAIL_DELIVERY_ASYNC_COMMIT = env_bool("CALMAIL_DELIVERY_ASYNC_COMMIT", True)
# PDF reports up to this many rows are a table; larger ones a compact listing (one line
# per row), which WeasyPrint renders in seconds instead of minutes.
CALMAIL_PDF_TABLE_MAX_ROWS = env_int("CALMAIL_PDF_TABLE_MAX_ROWS", 1000)
# Largest rendered subject of a mail template: RFC 5322's line limit, and what the form
# takes as the subject's source.
CALMAIL_TEMPLATE_MAX_SUBJECT_CHARS = env_int("CALMAIL_TEMPLATE_MAX_SUBJECT_CHARS", 998)
# Largest rendered HTML body and text body (each) of a mail template, and of any text a
# filter makes; rendering stops as soon as a part passes it (templates_app/rendering.py).
CALMAIL_TEMPLATE_MAX_BODY_CHARS = env_int("CALMAIL_TEMPLATE_MAX_BODY_CHARS", 2_000_000)
# Downtime: the latest missed slot of an action still runs (once) if it is at most this old.
CALMAIL_CATCHUP_GRACE_SECONDS = env_int("CALMAIL_CATCHUP_GRACE_SECONDS", 3600)
CALMAIL_PAGE_SIZE = env_int("CALMAIL_PAGE_SIZE", 25)
CALMAIL_MAX_PAGE_SIZE = env_int("CALMAIL_MAX_PAGE_SIZE", 200)
# Days log entries are kept: audit entries, delivery events, debug-level entries, and
# everything else ("default"); each overridable as CALMAIL_LOG_RETENTION_<KEY>_DAYS.
CALMAIL_LOG_RETENTION_DAYS = {
    key: env_int(f"CALMAIL_LOG_RETENTION_{key.upper()}_DAYS", days)
    for key, days in {"audit": 365, "delivery": 90, "debug": 30, "default": 180}.items()
}
# Days the content of sent (and cancelled or failed) outbox mails is kept: bodies, the
# raw mail and attachment files. The record of each mail stays for the years below.
CALMAIL_OUTBOX_RETENTION_DAYS = env_int("CALMAIL_OUTBOX_RETENTION_DAYS", 180)
# Years the record of a finished mail is kept (recipient, subject, status, times,
# attempts, Message-ID, who and which action): the evidence that it went out.
CALMAIL_RECORD_RETENTION_YEARS = env_int("CALMAIL_RECORD_RETENTION_YEARS", 10)
if CALMAIL_RECORD_RETENTION_YEARS < 1:
    raise ImproperlyConfigured("CALMAIL_RECORD_RETENTION_YEARS must be at least 1.")
if CALMAIL_RECORD_RETENTION_YEARS * 365 < CALMAIL_OUTBOX_RETENTION_DAYS:
    raise ImproperlyConfigured(
        "CALMAIL_RECORD_RETENTION_YEARS must cover CALMAIL_OUTBOX_RETENTION_DAYS: a mail's "
        "record cannot go before its content."
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {
        "no_client_error_traceback": {
            "()": "calmail.common.logfilters.NoClientErrorTraceback",
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's own configuration (applied before this one) gives "django" a console
        # handler of its own (DEBUG only) and "django.server" one that does not propagate:
        # with the root's handler every line came out twice, every 403 with two
        # tracebacks. Naming "django" here drops those handlers, and those of its
        # children: everything goes through the root's one handler, once.
        "django": {"handlers": [], "propagate": True},
        # A 403 or 404 is the client's mistake: one line, no traceback.
        "django.request": {"filters": ["no_client_error_traceback"]},
        # smtplib's debug output would carry AUTH payloads; it is never enabled.
        "django.db.backends": {"level": "INFO"},
        # WeasyPrint logs every page of every PDF report at INFO.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
        # django-axes logs every sign-in at INFO; lockouts are in calmail's Log anyway.
        "axes": {"level": "WARNING"},
        # The OAuth libraries log request bodies (client secrets, tokens) at DEBUG.
        "msal": {"level": "INFO"},
        "google.auth": {"level": "INFO"},
        "requests_oauthlib": {"level": "INFO"},
        "oauthlib": {"level": "INFO"},
        "urllib3": {"level": "INFO"},
    },
}
