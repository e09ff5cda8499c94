"""Settings for the disclosure portal.

Everything is read from the environment through the strict readers in ``config.env``;
each variable is listed in the README's settings table. With nothing set the portal runs
on an embedded default (SQLite, django-q2's ORM broker, the database cache, mail on the
console) that is refused by system checks once DEBUG is off.
"""

import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_prefixed, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var"))).resolve()

# --- Core -------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)
INSECURE_DEV_SECRET_KEY = "insecure-development-key-never-use-in-production"
SECRET_KEY = env_secret("SECRET_KEY", INSECURE_DEV_SECRET_KEY)
# Former keys, still accepted when checking signatures (sessions, signed cookies) while a new
# SECRET_KEY takes over: comma- or newline-separated; drop them once the overlap is over.
SECRET_KEY_FALLBACKS = [key.strip() for key in re.split(r"[,\n]", env_secret("SECRET_KEY_FALLBACKS")) if key.strip()]
# The team is reminded (weekly email, system check W005, /healthz warning) to rotate a secret the
# portal uses (SECRET_KEY, mail, storage and webhook credentials) once it is older than this, and
# the team PGP key once older than TEAM_KEY_MAX_AGE_DAYS (disclosure/rotation.py).
SECRET_MAX_AGE_DAYS = env_int("SECRET_MAX_AGE_DAYS", 90, minimum=1)
TEAM_KEY_MAX_AGE_DAYS = env_int("TEAM_KEY_MAX_AGE_DAYS", 730, minimum=1)

SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
_site_host = urlsplit(SITE_URL).hostname or "localhost"
# Default addresses use the site's domain; an IP address is no mail domain, so use localhost.


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


_mail_domain = "localhost" if _is_ip(_site_host) else _site_host
ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS",
    [_site_host, "localhost", "127.0.0.1", "[::1]"] if DEBUG else [_site_host],
)
CSRF_TRUSTED_ORIGINS = [f"{urlsplit(SITE_URL).scheme}://{urlsplit(SITE_URL).netloc}"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_otp",
    "disclosure.apps.TwoFactorDevicesConfig",  # django_otp.plugins.otp_totp, named for the admin
    "django_q",
    "django_ratelimit",
    "disclosure",
]

MIDDLEWARE = [
    "disclosure.security_middleware.SecurityHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "disclosure.securitytxt.SecurityTxtMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "disclosure.middleware.StaffTwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "disclosure.ratelimits.RateLimitedMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "disclosure.context_processors.programme",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
# SQLite is shared by the web process and the queue worker: wait for locks instead of
# failing, take the write lock at the start of each transaction, and use WAL so readers
# never block the writer.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and queue ----------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "disclosure_cache",
        }
    }

# django-q2 retries a failing task forever unless max_attempts is finite. Our delivery
# task records its own failures and retries with backoff (see disclosure.tasks), so a
# task that still raises is a bug: try it a few times, then leave it in Failed tasks.
Q_CLUSTER = {
    "name": "disclosure",
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    "timeout": 60,
    "retry": 90,
    "max_attempts": 3,
    "catch_up": False,
    "save_limit": 1000,
    "ack_failures": True,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Email ------------------------------------------------------------------------------
MAILER = env_str("MAILER", "console").strip().lower()
MAIL_FILE_PATH = Path(env_str("MAIL_FILE_PATH", str(DATA_DIR / "mail")))
_builtin_mailers = {
    "console": ("django.core.mail.backends.console.EmailBackend", {}),
    "file": ("django.core.mail.backends.filebased.EmailBackend", {"file_path": str(MAIL_FILE_PATH)}),
    "locmem": ("django.core.mail.backends.locmem.EmailBackend", {}),
    "smtp": (
        "django.core.mail.backends.smtp.EmailBackend",
        {
            "host": env_str("SMTP_HOST", "localhost"),
            "port": env_int("SMTP_PORT", 587, minimum=1),
            "username": env_str("SMTP_USER"),
            "password": env_secret("SMTP_PASSWORD"),
            "use_tls": env_bool("SMTP_STARTTLS", True),
            "timeout": 30,
        },
    ),
}
if MAILER in _builtin_mailers:
    _backend, _options = _builtin_mailers[MAILER]
else:
    # Any django-anymail ESP by its module name: mailgun, postmark, amazon_ses, brevo, ...
    _backend, _options = f"anymail.backends.{MAILER}.EmailBackend", {}
MAILERS = {"default": {"BACKEND": _backend, "OPTIONS": _options}}
# ANYMAIL_<KEY>=value becomes ANYMAIL["<KEY>"], e.g. ANYMAIL_POSTMARK_SERVER_TOKEN.
ANYMAIL = env_prefixed("ANYMAIL_")

DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", f"Security team <security@{_mail_domain}>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
SECURITY_TEAM_EMAIL = env_str("SECURITY_TEAM_EMAIL", f"security@{_mail_domain}")
EMAIL_MAX_ATTEMPTS = env_int("EMAIL_MAX_ATTEMPTS", 6, minimum=1)
EMAIL_RETRY_SECONDS = env_int("EMAIL_RETRY_SECONDS", 60, minimum=1)

# --- Inbound mail (security@ as an intake channel; see disclosure/inbound/) ----------------
# An IMAP mailbox polled every minute: imaps://user@host:993/INBOX (user percent-encoded,
# e.g. security%40example.com). imap:// (no TLS) is for a server on this host only.
INBOUND_IMAP_URL = env_str("INBOUND_IMAP_URL").strip()
INBOUND_IMAP_PASSWORD = env_secret("INBOUND_IMAP_PASSWORD")
# XOAUTH2 instead of a password: a file holding a current bearer token (renewed by the
# provider's tooling; read at every poll).
INBOUND_IMAP_OAUTH2_TOKEN_FILE = env_str("INBOUND_IMAP_OAUTH2_TOKEN_FILE").strip()
INBOUND_DONE_FOLDER = env_str("INBOUND_DONE_FOLDER", "Processed").strip()
# A larger message still becomes a report from its headers and text; its attachments are dropped.
INBOUND_MAX_BYTES = env_int("INBOUND_MAX_BYTES", 30 * 1024 * 1024, minimum=64 * 1024)
# New reports by email per sender and in all, per hour; more are filed as held for review
# (no receipt, so the portal is not a backscatter source).
INBOUND_SENDER_REPORTS_PER_HOUR = env_int("INBOUND_SENDER_REPORTS_PER_HOUR", 5, minimum=1)
INBOUND_REPORTS_PER_HOUR = env_int("INBOUND_REPORTS_PER_HOUR", 60, minimum=1)
# The authserv-id of your receiving server's Authentication-Results header: a message it
# marks dmarc=fail is filed as likely spam, without a receipt. Unset: not checked.
INBOUND_TRUSTED_AUTHSERV_ID = env_str("INBOUND_TRUSTED_AUTHSERV_ID").strip().lower()

# --- The programme ---------------------------------------------------------------------
ORGANISATION_NAME = env_str("ORGANISATION_NAME", "Example Ltd")
TRACKING_ID_PREFIX = env_str("TRACKING_ID_PREFIX", "VDP")
SLA_ACKNOWLEDGE_DAYS = env_int("SLA_ACKNOWLEDGE_DAYS", 3, minimum=1)
SLA_ASSESS_DAYS = env_int("SLA_ASSESS_DAYS", 10, minimum=1)
SLA_WARN_BUSINESS_DAYS = env_int("SLA_WARN_BUSINESS_DAYS", 1, minimum=0)
SLA_ESCALATION_EMAIL = env_str("SLA_ESCALATION_EMAIL", SECURITY_TEAM_EMAIL)
DAILY_DIGEST_HOUR = env_int("DAILY_DIGEST_HOUR", -1, minimum=-1)
TIME_ZONE = env_str("TIME_ZONE", "Europe/London")
HOLIDAYS_COUNTRY = env_str("HOLIDAYS_COUNTRY", "GB")
HOLIDAYS_SUBDIVISION = env_str("HOLIDAYS_SUBDIVISION", "ENG")

# --- Incidents: breach clocks, P1 paging, outbound webhooks (disclosure/incidents.py, webhooks.py) --
# Wall-clock hours (nights, weekends and holidays count) from becoming aware of a personal-data
# breach to notifying clients (the data processing agreement) and the regulator (UK GDPR Art. 33).
BREACH_CLIENT_HOURS = env_int("BREACH_CLIENT_HOURS", 24, minimum=1)
BREACH_REGULATOR_HOURS = env_int("BREACH_REGULATOR_HOURS", 72, minimum=1)
# When to warn before a breach deadline: shares of the time left ("50%") and hours left ("4h").
BREACH_WARN_AT = env_list("BREACH_WARN_AT", ["50%", "4h"])
for _warn in BREACH_WARN_AT:
    if not re.fullmatch(r"([1-9][0-9]?%|[1-9][0-9]*h)", _warn):
        raise ImproperlyConfigured(f"BREACH_WARN_AT takes shares of time left and hours left, like 50%,4h; "
                                   f"not {_warn!r}")
# Where a report triaged as (or raised to) P1 is paged at once.
P1_ALERT_EMAIL = env_str("P1_ALERT_EMAIL", SLA_ESCALATION_EMAIL)
# Outbound webhooks: never to loopback, private, link-local or other non-public addresses
# unless this is on (a receiver on your own network); https only unless DEBUG.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env_bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False)
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 6, minimum=1)
WEBHOOK_RETRY_SECONDS = env_int("WEBHOOK_RETRY_SECONDS", 30, minimum=1)
# A PEM file of CA certificates to trust for webhook receivers instead of the system's.
WEBHOOK_CA_BUNDLE = env_str("WEBHOOK_CA_BUNDLE").strip()

# --- PGP and security.txt ---------------------------------------------------------------
GPG_BINARY = env_str("GPG_BINARY", "gpg")
GNUPG_HOME = Path(env_str("GNUPG_HOME", str(DATA_DIR / "gnupg")))
TEAM_KEY_FINGERPRINT = env_str("TEAM_KEY_FINGERPRINT")
TEAM_KEY_PASSPHRASE = env_secret("TEAM_KEY_PASSPHRASE")
# The team key from a secret (a platform secret or a mounted file: armored secret or public
# key), imported into GNUPG_HOME by every process before it uses the keyring, so a host needs
# no persistent keyring (disclosure/pgp/keyring.py: import_team_key_file).
TEAM_KEY_FILE = env_str("TEAM_KEY_FILE").strip()
# Former team keys, kept in the keyring after a rotation (manage.py pgp_rotate_team_key): what
# was sealed to them stays readable, and messages researchers encrypt to them are accepted.
TEAM_KEY_PREVIOUS_FINGERPRINTS = [fpr.replace(" ", "").upper() for fpr in env_list("TEAM_KEY_PREVIOUS_FINGERPRINTS")]
# Report bodies and attachments are stored encrypted to the team key when one is configured.
STORE_ENCRYPTED = env_bool("STORE_ENCRYPTED", True)
REPORTER_KEY_MAX_BYTES = env_int("REPORTER_KEY_MAX_BYTES", 64 * 1024, minimum=1024)
REPORTER_KEY_MAX_UIDS = env_int("REPORTER_KEY_MAX_UIDS", 20, minimum=1)
SECURITYTXT_EXPIRES_DAYS = env_int("SECURITYTXT_EXPIRES_DAYS", 180, minimum=7)
# Defaults for the programme settings a Lead can change in the admin.
PREFERRED_LANGUAGES = env_str("PREFERRED_LANGUAGES", "en")
HIRING_URL = env_str("HIRING_URL")
CSAF_URL = env_str("CSAF_URL")

# --- Retention ----------------------------------------------------------------------------
# Finished reports are purged this many days after they were closed, resolved or disclosed
# (0 keeps them forever); a legal hold exempts a report.
RETENTION_DAYS = env_int("RETENTION_DAYS", 365, minimum=0)

# --- Backups (manage.py backup / restore; see the README) ----------------------------------
BACKUP_DIR = Path(env_str("BACKUP_DIR", str(DATA_DIR / "backups")))
# Also encrypt backups to this key (e.g. an offline key; its public half imported into GNUPG_HOME).
BACKUP_KEY_FINGERPRINT = env_str("BACKUP_KEY_FINGERPRINT").replace(" ", "").upper()
# Hour (programme time, 0-23) of the daily scheduled backup; -1: no schedule (run it from cron).
BACKUP_HOUR = env_int("BACKUP_HOUR", 2, minimum=-1)
# Archives older than this are deleted after each scheduled backup (a system check refuses more
# than 90, so what the portal purges leaves its backups within 90 days).
BACKUP_RETENTION_DAYS = env_int("BACKUP_RETENTION_DAYS", 30, minimum=1)
# Where the archives go: "bucket" (the object-storage bucket of S3_BUCKET, under BACKUP_S3_PREFIX)
# or "dir" (BACKUP_DIR); the bucket by default when files are kept in one. A system check refuses
# any other value, and "bucket" without S3_BUCKET.
BACKUP_TARGET = env_str("BACKUP_TARGET", "bucket" if env_str("S3_BUCKET").strip() else "dir").strip().lower()
# The archives' folder in the bucket, from the bucket's root (not inside S3_PREFIX unless it says
# so); a folder of their own, never counted among the portal's files.
BACKUP_S3_PREFIX = env_str("BACKUP_S3_PREFIX", "backups").strip().strip("/")

# --- Uploads ----------------------------------------------------------------------------
MEDIA_ROOT = Path(env_str("UPLOAD_DIR", str(DATA_DIR / "uploads")))
MEDIA_URL = None  # never served directly: downloads go through access-checked views
MAX_ATTACHMENTS = env_int("MAX_ATTACHMENTS", 10, minimum=0)
MAX_ATTACHMENT_BYTES = env_int("MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024, minimum=1)
MAX_ATTACHMENTS_TOTAL_BYTES = env_int("MAX_ATTACHMENTS_TOTAL_BYTES", 25 * 1024 * 1024, minimum=1)
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200
DATA_UPLOAD_MAX_NUMBER_FILES = MAX_ATTACHMENTS + 5
# Bodies larger than this are refused from their Content-Length before being read (413).
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_BYTES", MAX_ATTACHMENTS_TOTAL_BYTES + 2 * 1024 * 1024, minimum=1024)
# That is the one cap on a body: Django's own 2.5 MB limit on a body read into memory would
# refuse a mail provider's inbound webhook carrying an email with attachments (a JSON or form
# body, not a file upload). Public form fields have their own length limits.
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES

# --- Static files -----------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Object storage (S3 or any S3-compatible store) for every file the portal keeps, when
# S3_BUCKET is set; otherwise UPLOAD_DIR on local disk (disclosure/storage.py).
S3_BUCKET = env_str("S3_BUCKET").strip()
S3_ENDPOINT_URL = env_str("S3_ENDPOINT_URL").strip()
S3_REGION = env_str("S3_REGION").strip()
S3_ACCESS_KEY_ID = env_str("S3_ACCESS_KEY_ID").strip()
S3_SECRET_ACCESS_KEY = env_secret("S3_SECRET_ACCESS_KEY").strip()
S3_PREFIX = env_str("S3_PREFIX").strip().strip("/")
S3_ADDRESSING_STYLE = env_str("S3_ADDRESSING_STYLE", "auto").strip().lower()
if S3_ADDRESSING_STYLE not in ("auto", "path", "virtual"):
    raise ImproperlyConfigured(f"S3_ADDRESSING_STYLE must be auto, path or virtual, not {S3_ADDRESSING_STYLE!r}")
if S3_BUCKET:
    from botocore.config import Config as _BotoConfig

    # Private objects under random names: no ACL (the bucket's own, private, applies), never a
    # URL for a browser (downloads go through the portal's access-checked views), never an
    # overwrite. Files over 2 MiB are spooled to a temporary file, not held in memory.
    _default_storage = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": S3_BUCKET, "endpoint_url": S3_ENDPOINT_URL or None, "region_name": S3_REGION or None,
        "access_key": S3_ACCESS_KEY_ID or None, "secret_key": S3_SECRET_ACCESS_KEY or None,
        "location": S3_PREFIX, "default_acl": None, "querystring_auth": True, "file_overwrite": False,
        "max_memory_size": 2 * 1024 * 1024,
        "client_config": _BotoConfig(connect_timeout=5, read_timeout=30, s3={"addressing_style": S3_ADDRESSING_STYLE},
                                     retries={"max_attempts": 3, "mode": "standard"}),
    }}
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Rate limits (django-ratelimit) --------------------------------------------------------
# "<count>/<period>", period in s, m, h or d (e.g. 10/h, 5/15m).
RATE_LIMITS = {
    "submit": env_str("RATELIMIT_SUBMIT", "10/h"),
    "form_post": env_str("RATELIMIT_FORM_POST", "60/h"),
    "status": env_str("RATELIMIT_STATUS", "120/h"),
    "message": env_str("RATELIMIT_MESSAGE", "20/h"),
    "lost_link": env_str("RATELIMIT_LOST_LINK", "5/h"),
    "login": env_str("RATELIMIT_LOGIN", "10/15m"),
}
for _group, _rate in RATE_LIMITS.items():
    if not re.fullmatch(r"[1-9][0-9]*/[0-9]*[smhd]", _rate):
        raise ImproperlyConfigured(f"RATELIMIT_{_group.upper()} must look like 10/h or 5/15m, not {_rate!r}")
# One store of counters per deployment, shared by every process and host, and each count
# is atomic: with REDIS_URL, Redis (the default cache: a window's counter is created with
# SET NX and counted with INCR); otherwise one table in the database
# (disclosure/ratelimit_store.py: an INSERT ... ON CONFLICT and an UPDATE ... RETURNING,
# on SQLite and PostgreSQL alike). When the store cannot be reached, requests are let
# through, except staff login, counted per process meanwhile (disclosure/ratelimits.py).
if REDIS_URL:
    RATELIMIT_USE_CACHE = "default"
else:
    RATELIMIT_USE_CACHE = "ratelimit"
    CACHES["ratelimit"] = {"BACKEND": "disclosure.ratelimit_store.CounterTableCache"}
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
# django-ratelimit's W001 only says a backend is not on its short list (memcached and
# django-redis): both stores above do add() and incr() atomically, which is all it needs.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]

# A development mailer in production is reported once, by disclosure.E004 (which names the
# MAILER setting to change), not a second time by Django's mail.E001 about MAILERS.
SILENCED_SYSTEM_CHECKS += ["mail.E001"]

# Spam controls without third parties: a honeypot field, and a minimum time between
# showing the form and submitting it (for browsers; scripted submissions skip it).
MIN_FORM_SECONDS = env_int("MIN_FORM_SECONDS", 3, minimum=0)

# --- Security ---------------------------------------------------------------------------
_https = SITE_URL.startswith("https://")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_PROXY", False) else None
SECURE_SSL_REDIRECT = _https and not DEBUG
SECURE_HSTS_SECONDS = 31536000 if _https else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = _https
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("STAFF_SESSION_HOURS", 8, minimum=1) * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# Staff must pass a second factor (TOTP, django-otp) before using the admin. Always on in
# production; optional while developing.
STAFF_2FA_REQUIRED = env_bool("STAFF_2FA_REQUIRED", not DEBUG)
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # nobody, Leads included, can read another person's TOTP secret
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", f"{ORGANISATION_NAME} disclosure")
CSRF_COOKIE_SECURE = _https
CSRF_COOKIE_HTTPONLY = True
CSRF_FAILURE_VIEW = "disclosure.views.csrf_failure"

from django.utils.csp import CSP  # noqa: E402

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
FORMAT_MODULE_PATH = ["config.formats"]  # one date style everywhere: "2 Dec 2026, 23:59 GMT"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's own console handler would print every line twice next to ours.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
    },
}
