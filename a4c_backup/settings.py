"""All settings of a4c-backup, in one place.

Precedence: the environment, then a .env file at the project root, then the original tool's
config/config.yml (A4C_LEGACY_CONFIG names another path), then the embedded defaults, which
work with no configuration at all (SQLite, Elasticsearch and Redis on loopback, data under var/).
Wrong values are reported by the system checks in backups/doctor/settings_checks.py.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import environ

from a4c_backup.keyfile import read_or_create
from a4c_backup.legacy_config import LegacyConfigError, read_legacy_config

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # never overrides variables already set

VAR_DIR = Path(env.str("A4C_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()

LEGACY_CONFIG_PATH = Path(
    env.str("A4C_LEGACY_CONFIG", default=str(BASE_DIR / "config" / "config.yml"))
)
LEGACY_CONFIG_ERROR = ""
_legacy = None
if LEGACY_CONFIG_PATH.exists():
    try:
        _legacy = read_legacy_config(LEGACY_CONFIG_PATH)
    except LegacyConfigError as exc:
        LEGACY_CONFIG_ERROR = str(exc)


def _from_legacy(attr: str, default):
    value = getattr(_legacy, attr, None) if _legacy else None
    return value if value else default


# Where each value came from, so that the checks can name the setting a person must fix.
def _source(env_name: str, legacy_key: str | None, legacy_attr: str | None) -> str:
    if env_name in os.environ:
        return f"the environment variable {env_name}"
    if legacy_attr and _legacy and getattr(_legacy, legacy_attr, None):
        return f"{legacy_key} in {LEGACY_CONFIG_PATH}"
    return f"{env_name} (default)"


# Unset, each is generated once and kept under VAR_DIR (mode 0600). The audit key seals the
# audit history's hash chain (an HMAC): whoever can write to the database but not read this key
# cannot rewrite history unnoticed. It is its own key so that changing the session key does not
# make the whole history look forged.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or read_or_create(
    VAR_DIR / "secret-key", "DJANGO_SECRET_KEY"
)
A4C_AUDIT_KEY = env.str("A4C_AUDIT_KEY", default="") or read_or_create(
    VAR_DIR / "audit-key", "A4C_AUDIT_KEY"
)
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list(
    "A4C_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.list("A4C_CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "backups.web.views.account.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "backups",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # After authentication: ends idle and too-old sessions before any view sees the user.
    "backups.web.sessions.SessionLimitsMiddleware",
    # Last, as django-axes asks: turns a refused sign-in into the "locked out" page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "a4c_backup.urls"
WSGI_APPLICATION = "a4c_backup.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            "builtins": ["backups.templatetags.console"],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and command line share one file: wait for the write lock instead of failing,
    # and take it at the start of a transaction so read-then-write sequences cannot interleave.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file (not memory) so that worker processes started by the tests share it; one per test
    # run, so that two runs on one machine do not trample each other.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "backups:dashboard"
LOGOUT_REDIRECT_URL = "login"

# --- Facing a network: HTTPS, sign-in throttling, sessions, the directory -----------------
# A value here that cannot be read keeps its default and is named by `manage.py check`
# (backups/doctor/network.py): a typo in A4C_HTTPS must not quietly leave HTTPS off, nor one in
# a number stop every command with a traceback that names no setting.
NETWORK_SETTING_PROBLEMS: list[str] = []


def _read(name: str, default, parse, wanted: str):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError:
        NETWORK_SETTING_PROBLEMS.append(f"{name} is {raw!r}: {wanted}.")
        return default


def _flag(raw: str) -> bool:
    words = {"1": True, "true": True, "yes": True, "on": True}
    words |= {"0": False, "false": False, "no": False, "off": False}
    if raw.lower() not in words:
        raise ValueError(raw)
    return words[raw.lower()]


def _at_least(kind, low):
    def parse(raw: str):
        value = kind(raw)
        if value < low:
            raise ValueError(raw)
        return value

    return parse


_YES_NO = "write true or false"
# The console behind a TLS-terminating reverse proxy (README, "Running it for a team"): the
# proxy sets X-Forwarded-Proto, which the web server passes on only from A4C_TRUSTED_PROXY.
A4C_HTTPS = _read("A4C_HTTPS", False, _flag, _YES_NO)
A4C_HSTS_SECONDS = _read(
    "A4C_HSTS_SECONDS", 31536000, _at_least(int, 0), "a whole number of seconds, 0 or more"
)
A4C_HSTS_INCLUDE_SUBDOMAINS = _read("A4C_HSTS_INCLUDE_SUBDOMAINS", False, _flag, _YES_NO)
# The address of the reverse proxy whose X-Forwarded-For and X-Forwarded-Proto the web server
# believes (a4c_backup/serve.py); from any other peer those headers are dropped.
A4C_TRUSTED_PROXY = env.str("A4C_TRUSTED_PROXY", default="")
if A4C_HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    # A load balancer probes /healthz over plain HTTP, behind the proxy's back.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = A4C_HSTS_SECONDS
    SECURE_HSTS_INCLUDE_SUBDOMAINS = A4C_HSTS_INCLUDE_SUBDOMAINS
    # The console is usually one host of a domain whose other sites it does not own: HSTS for
    # every subdomain, and the browsers' preload list, are the domain owner's decisions.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
    if not A4C_HSTS_INCLUDE_SUBDOMAINS:
        SILENCED_SYSTEM_CHECKS.append("security.W005")

# Sign-in throttling (django-axes): so many failures for one user name, or from one address,
# and sign-ins are refused for the cool-off; `manage.py unlock` lifts it early.
A4C_LOGIN_FAILURE_LIMIT = _read(
    "A4C_LOGIN_FAILURE_LIMIT", 5, _at_least(int, 1), "a whole number of failures, 1 or more"
)
A4C_LOGIN_COOLOFF_MINUTES = _read(
    "A4C_LOGIN_COOLOFF_MINUTES", 15.0, _at_least(float, 0.1), "a number of minutes, 0.1 or more"
)
AXES_FAILURE_LIMIT = A4C_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=A4C_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]  # either one locks
# A success does not wipe the failures: otherwise someone with an account of their own could
# guess another's password four times, sign in as themselves, and start again.
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "backups.web.views.account.locked_out"
# The peer the web server saw (the real client when A4C_TRUSTED_PROXY is set): never a header
# the client wrote, or rotating it would dodge the per-address limit.
AXES_CLIENT_IP_CALLABLE = "backups.web.throttle.client_address"

# Sessions end after this long without a request a person made (polling does not count), and
# in any case this long after signing in.
A4C_SESSION_IDLE_MINUTES = _read(
    "A4C_SESSION_IDLE_MINUTES", 60.0, _at_least(float, 1), "a number of minutes, 1 or more"
)
A4C_SESSION_MAX_HOURS = _read(
    "A4C_SESSION_MAX_HOURS", 12.0, _at_least(float, 0.1), "a number of hours, 0.1 or more"
)
SESSION_COOKIE_AGE = max(60, int(A4C_SESSION_MAX_HOURS * 3600))

# The directory (django-auth-ldap), on when A4C_LDAP_URL is set; local accounts keep working.
A4C_LDAP_URL = env.str("A4C_LDAP_URL", default="")
A4C_LDAP_BIND_DN = env.str("A4C_LDAP_BIND_DN", default="")
A4C_LDAP_BIND_PASSWORD = env.str("A4C_LDAP_BIND_PASSWORD", default="")
A4C_LDAP_BIND_PASSWORD_FILE = env.str("A4C_LDAP_BIND_PASSWORD_FILE", default="")
A4C_LDAP_USER_DN_TEMPLATE = env.str("A4C_LDAP_USER_DN_TEMPLATE", default="")
A4C_LDAP_USER_SEARCH_BASE = env.str("A4C_LDAP_USER_SEARCH_BASE", default="")
A4C_LDAP_USER_FILTER = env.str("A4C_LDAP_USER_FILTER", default="(uid=%(user)s)")
A4C_LDAP_GROUP_SEARCH_BASE = env.str("A4C_LDAP_GROUP_SEARCH_BASE", default="")
A4C_LDAP_GROUP_TYPE = env.str("A4C_LDAP_GROUP_TYPE", default="groupOfNames")
# The directory group (a DN) whose members get each role; re-read at every sign-in.
A4C_LDAP_ROLE_GROUPS = {
    "viewers": env.str("A4C_LDAP_GROUP_VIEWERS", default=""),
    "operators": env.str("A4C_LDAP_GROUP_OPERATORS", default=""),
    "restorers": env.str("A4C_LDAP_GROUP_RESTORERS", default=""),
}
A4C_LDAP_GROUP_SUPERUSERS = env.str("A4C_LDAP_GROUP_SUPERUSERS", default="")
A4C_LDAP_START_TLS = _read("A4C_LDAP_START_TLS", False, _flag, _YES_NO)
A4C_LDAP_CA_CERT = env.str("A4C_LDAP_CA_CERT", default="")
A4C_LDAP_TIMEOUT = _read(
    "A4C_LDAP_TIMEOUT", 5.0, _at_least(float, 0.5), "a number of seconds, 0.5 or more"
)
if A4C_LDAP_URL:
    from a4c_backup.ldap_config import ldap_settings

    vars().update(ldap_settings(vars()))
    AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "backups.web.directory.DirectoryBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]
else:
    AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("A4C_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "backups": {"handlers": ["console"], "level": env.str("A4C_LOG_LEVEL", default="INFO")},
        # Node failures are reported by our own errors; the transport's warnings are noise
        # in cron mail.
        "elastic_transport": {"handlers": ["console"], "level": "ERROR"},
    },
}

# --- Elasticsearch -------------------------------------------------------------------------
A4C_ES_URLS = env.list("A4C_ES_URLS", default=_from_legacy("addresses", ["http://127.0.0.1:9200"]))
A4C_ES_URLS_SOURCE = _source("A4C_ES_URLS", "elasticsearch.addresses", "addresses")
A4C_ES_CLUSTER_NAME = env.str("A4C_ES_CLUSTER_NAME", default=_from_legacy("cluster_name", ""))
A4C_ES_CLUSTER_NAME_SOURCE = _source(
    "A4C_ES_CLUSTER_NAME", "elasticsearch.cluster_name", "cluster_name"
)
A4C_ES_USERNAME = env.str("A4C_ES_USERNAME", default="")
A4C_ES_PASSWORD = env.str("A4C_ES_PASSWORD", default="")
A4C_ES_API_KEY = env.str("A4C_ES_API_KEY", default="")
A4C_ES_CA_CERT = env.str("A4C_ES_CA_CERT", default="")
A4C_ES_VERIFY_CERTS = env.bool("A4C_ES_VERIFY_CERTS", default=True)
A4C_ES_TIMEOUT = env.float("A4C_ES_TIMEOUT", default=30.0)
A4C_ES_REPOSITORY = env.str("A4C_ES_REPOSITORY", default="a4c-backup")
A4C_ES_REPOSITORY_PATH = env.str(
    "A4C_ES_REPOSITORY_PATH", default=str(VAR_DIR / "es-repo" / "a4c-backup")
)
# Which indices are A4C's: comma lists of patterns. Hidden and system indices never match "*".
A4C_INDEX_INCLUDE = env.list("A4C_INDEX_INCLUDE", default=["*"])
A4C_INDEX_EXCLUDE = env.list("A4C_INDEX_EXCLUDE", default=[])
A4C_INCLUDE_GLOBAL_STATE = env.bool("A4C_INCLUDE_GLOBAL_STATE", default=False)

# --- Files ---------------------------------------------------------------------------------
A4C_DATA_DIR = Path(
    env.str("A4C_DATA_DIR", default=_from_legacy("alien4cloud_dir", str(VAR_DIR / "a4c-data")))
)
A4C_DATA_DIR_SOURCE = _source("A4C_DATA_DIR", "alien4cloud.dir", "alien4cloud_dir")
A4C_BACKUP_DIR = Path(
    env.str("A4C_BACKUP_DIR", default=_from_legacy("files_dir", str(VAR_DIR / "backups")))
)
A4C_BACKUP_DIR_SOURCE = _source("A4C_BACKUP_DIR", "backup.files_dir", "files_dir")
# Where a restore drill restores a set's files to check them (operations/drill.py), emptied
# at the end of every drill; empty: "<A4C_BACKUP_DIR>-drills", on the storage's filesystem.
A4C_DRILL_DIR = env.str("A4C_DRILL_DIR", default="")
# The names a drill restores a set's indices under ("<prefix><drill id>-<index>"): a dot makes
# them hidden, never Alien4Cloud's (A4C_INDEX_INCLUDE never counts a dot-name).
A4C_DRILL_INDEX_PREFIX = env.str("A4C_DRILL_INDEX_PREFIX", default=".a4c-drill-")
# A scratch cluster that drills restore into instead of the live one (comma-separated REST
# addresses, reached with A4C_ES_*'s credentials and CA); it must see the repository's directory
# under its path.repo, where the drill registers it read-only. Empty: the live cluster.
A4C_DRILL_ES_URLS = env.list("A4C_DRILL_ES_URLS", default=[])
# Documents read back from each restored index.
A4C_DRILL_SAMPLE_DOCS = env.int("A4C_DRILL_SAMPLE_DOCS", default=20)
# No drill passed in this many days: Health turns red and people are told once (0: off).
A4C_DRILL_MAX_AGE_DAYS = env.float("A4C_DRILL_MAX_AGE_DAYS", default=0.0)
# Top-level directories of the data dir that are caches, left out of every backup.
A4C_EXCLUDE_DIRS = env.list("A4C_EXCLUDE_DIRS", default=["work", "tmp", "upload"])
# No more file threads than cores: on two, a third and fourth only contend for the GIL.
A4C_FILE_WORKERS = env.int("A4C_FILE_WORKERS", default=min(4, os.cpu_count() or 1))
# A cap on the disk bandwidth of file copying (backup reads, restore writes), so that a backup
# of a live A4C leaves it room: bytes per second like 50M, or 0 for none.
A4C_FILE_BANDWIDTH = env.str("A4C_FILE_BANDWIDTH", default="0")

# --- Running operations --------------------------------------------------------------------
# Commands run around each backup and restore (e.g. put A4C in maintenance mode, stop it).
A4C_PRE_BACKUP_COMMAND = env.str("A4C_PRE_BACKUP_COMMAND", default="")
A4C_POST_BACKUP_COMMAND = env.str("A4C_POST_BACKUP_COMMAND", default="")
A4C_PRE_RESTORE_COMMAND = env.str("A4C_PRE_RESTORE_COMMAND", default="")
A4C_POST_RESTORE_COMMAND = env.str("A4C_POST_RESTORE_COMMAND", default="")
A4C_HOOK_TIMEOUT = env.int("A4C_HOOK_TIMEOUT", default=300)
A4C_HEARTBEAT_SECONDS = env.float("A4C_HEARTBEAT_SECONDS", default=5.0)
# How long a run's lease on the backup storage outlives its last renewal (runs renew every
# 30 s at most): a console that died mid-run holds the collectors of the others this long.
A4C_STORAGE_LEASE_SECONDS = env.int("A4C_STORAGE_LEASE_SECONDS", default=600)
# Tests only: a folder where a test holds a run in the middle of copying files
# (backups/operations/pause_points.py). Unset, as in production, no run is ever held.
A4C_TEST_PAUSE_DIR = env.str("A4C_TEST_PAUSE_DIR", default="")
# A running operation whose heartbeat is older than this is taken for dead and recovered.
A4C_STALE_AFTER_SECONDS = env.float("A4C_STALE_AFTER_SECONDS", default=30.0)
# A queued operation that no worker has started after this long is failed and its lock freed.
A4C_PENDING_TIMEOUT_SECONDS = env.float("A4C_PENDING_TIMEOUT_SECONDS", default=900.0)
# The longest wait between two looks at a running snapshot (the first come sooner,
# backups/polling.py), and the longest Elasticsearch holds one look at restored shards.
A4C_POLL_SECONDS = env.float("A4C_POLL_SECONDS", default=0.5)
# Alien4Cloud's own URL (e.g. https://a4c.example.org:8088): its REST API puts A4C in
# maintenance mode around every backup and restore (backups/alien4cloud/).
A4C_SERVER_URL = env.str("A4C_SERVER_URL", default="")
A4C_SERVER_USERNAME = env.str("A4C_SERVER_USERNAME", default="")  # a user with the ADMIN role
A4C_SERVER_PASSWORD = env.str("A4C_SERVER_PASSWORD", default="")
# A file holding the password (its first line), read at each sign-in; wins over the variable.
A4C_SERVER_PASSWORD_FILE = env.str("A4C_SERVER_PASSWORD_FILE", default="")
A4C_SERVER_CA_CERT = env.str("A4C_SERVER_CA_CERT", default="")  # a CA bundle for https
A4C_SERVER_TIMEOUT = env.float("A4C_SERVER_TIMEOUT", default=10.0)
# off: never touch it; auto: use it when A4C is configured and answers; required: refuse to
# back up or restore without it.
A4C_MAINTENANCE = env.str("A4C_MAINTENANCE", default="auto")
# The message and progress A4C shows its users are sent at most this often.
A4C_MAINTENANCE_UPDATE_SECONDS = env.float("A4C_MAINTENANCE_UPDATE_SECONDS", default=5.0)
# Run after a restore (A4C's caches predate it), then /rest/admin/health is awaited this long.
A4C_RESTART_COMMAND = env.str("A4C_RESTART_COMMAND", default="")
A4C_RESTART_TIMEOUT = env.float("A4C_RESTART_TIMEOUT", default=300.0)
A4C_LAST_BACKUP_MAX_AGE_HOURS = env.float("A4C_LAST_BACKUP_MAX_AGE_HOURS", default=26.0)

# --- Schedules, retention, notifications, metrics ----------------------------------------
# How often the scheduler looks for due policies (a policy edited in the console is seen at the
# next look, without restarting anything).
A4C_SCHEDULER_TICK_SECONDS = env.float("A4C_SCHEDULER_TICK_SECONDS", default=15.0)
# Safety backups taken before restores: how many of the newest are kept.
# How often the worker re-reads the backup storage's catalog (other consoles' sets, gone ones).
A4C_SYNC_SECONDS = env.float("A4C_SYNC_SECONDS", default=300.0)
# How far in the future a record's times may be (clocks of hosts sharing a storage differ a
# little); a record dated later is refused by sync and import (operations/record_schema.py).
A4C_RECORD_CLOCK_SKEW_SECONDS = env.float("A4C_RECORD_CLOCK_SKEW_SECONDS", default=300.0)
# age public keys (age1...) that exported archives are encrypted to; empty: not encrypted.
A4C_EXPORT_RECIPIENTS = env.list("A4C_EXPORT_RECIPIENTS", default=[])
# This installation's Ed25519 key: it signs every record it writes and every archive it
# exports (made on first use, mode 0600, beside the audit key; keep a copy where the audit key
# is kept). `manage.py keys` prints its public half, to give to the installations that import.
A4C_SIGNING_KEY_FILE = Path(env.str("A4C_SIGNING_KEY_FILE", default=str(VAR_DIR / "signing-key")))
# Public keys (ssh-ed25519 AAAA...) of the other installations whose sets are trusted here, or
# files that list them, comma-separated. Sets signed by none of them nor by this installation
# are refused by sync and import, or taken in only as foreign when asked (README, "Trust").
A4C_TRUSTED_KEYS = env.list("A4C_TRUSTED_KEYS", default=[])
# Whether the periodic sync takes records no trusted key signed in as foreign sets.
A4C_SYNC_FOREIGN = env.bool("A4C_SYNC_FOREIGN", default=False)
# Off-site copies (backups/objectstore/; README, "Off-site copies"): every succeeded backup is
# copied, encrypted to A4C_EXPORT_RECIPIENTS, into this bucket (s3://BUCKET/PREFIX); empty: none.
A4C_OFFSITE_URL = env.str("A4C_OFFSITE_URL", default="")
# An S3-compatible service's URL (https://minio.example.org:9000); empty for AWS S3 itself.
A4C_OFFSITE_ENDPOINT_URL = env.str("A4C_OFFSITE_ENDPOINT_URL", default="")
A4C_OFFSITE_REGION = env.str("A4C_OFFSITE_REGION", default="")
# The bucket's access key; empty: boto3's own chain (AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY, a profile, an instance role). A _FILE variant holds it in its first
# line and wins over the variable.
A4C_OFFSITE_ACCESS_KEY = env.str("A4C_OFFSITE_ACCESS_KEY", default="")
A4C_OFFSITE_ACCESS_KEY_FILE = env.str("A4C_OFFSITE_ACCESS_KEY_FILE", default="")
A4C_OFFSITE_SECRET_KEY = env.str("A4C_OFFSITE_SECRET_KEY", default="")
A4C_OFFSITE_SECRET_KEY_FILE = env.str("A4C_OFFSITE_SECRET_KEY_FILE", default="")
# A CA bundle for an https endpoint whose certificate a private CA signed.
A4C_OFFSITE_CA_CERT = env.str("A4C_OFFSITE_CA_CERT", default="")
# What a policy's retention deletes is deleted off-site too, unless its copy is younger than
# this many days (0: deleted with the set).
A4C_OFFSITE_KEEP_DAYS = env.int("A4C_OFFSITE_KEEP_DAYS", default=0)
# A copy is cut in segments of this many bytes of the plain archive (each encrypted and sent on
# its own, one in memory at a time): what a resumed push sends again at most.
A4C_OFFSITE_SEGMENT_SIZE = env.str("A4C_OFFSITE_SEGMENT_SIZE", default="64M")
# A push the bucket fails is tried this many times in all, waiting A4C_OFFSITE_RETRY_SECONDS,
# then twice that, ... (at most 10 minutes) between tries; then it fails and is notified.
A4C_OFFSITE_ATTEMPTS = env.int("A4C_OFFSITE_ATTEMPTS", default=4)
A4C_OFFSITE_RETRY_SECONDS = env.float("A4C_OFFSITE_RETRY_SECONDS", default=30.0)
A4C_SAFETY_BACKUPS_KEEP = env.int("A4C_SAFETY_BACKUPS_KEEP", default=5)
A4C_NOTIFY_EMAILS = env.list("A4C_NOTIFY_EMAILS", default=[])
A4C_NOTIFY_WEBHOOK_URL = env.str("A4C_NOTIFY_WEBHOOK_URL", default="")
A4C_NOTIFY_TIMEOUT = env.float("A4C_NOTIFY_TIMEOUT", default=5.0)
# /metrics answers only requests bearing this token ("Authorization: Bearer ..." or ?token=);
# empty turns the endpoint off.
A4C_METRICS_TOKEN = env.str("A4C_METRICS_TOKEN", default="")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="a4c-backup@localhost")
vars().update(env.email_url("EMAIL_URL", default="smtp://localhost:25"))

# --- Celery --------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=CELERY_BROKER_URL)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False  # a killed restore is recovered, never re-run blindly
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_TRACK_STARTED = True
CELERY_BEAT_SCHEDULE = {
    "recover-stale-runs": {"task": "backups.tasks.recover_stale_runs", "schedule": 15.0},
    "run-due-policies": {
        "task": "backups.tasks.run_due_policies",
        "schedule": A4C_SCHEDULER_TICK_SECONDS,
    },
    "check-recent-backup": {"task": "backups.tasks.check_recent_backup", "schedule": 300.0},
    "check-drill-age": {"task": "backups.tasks.check_drill_age", "schedule": 300.0},
    "sync-catalog": {"task": "backups.tasks.sync_catalog", "schedule": A4C_SYNC_SECONDS},
    "offsite-upkeep": {"task": "backups.tasks.offsite_upkeep", "schedule": 3600.0},
}
