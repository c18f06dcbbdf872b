from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import SECRET_KEY, SEMID_EMBEDDED_POSTGRES, SEMID_EMBEDDED_REDIS, env_bool

DEBUG = env_bool("DEBUG", False)
if DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production")
# The embedded servers are for one development machine: production names its own.
if SEMID_EMBEDDED_POSTGRES:
    raise ImproperlyConfigured(
        "set DATABASE_URL in the environment for production, e.g. postgres://semid:PASSWORD@db:5432/semid "
        "(PostgreSQL with the pgvector extension)")
if SEMID_EMBEDDED_REDIS:
    raise ImproperlyConfigured("set REDIS_URL in the environment for production, e.g. redis://redis:6379/0")
# Django's own bar for a key (check W009: 50 characters, 5 distinct) and no placeholder words.
_PLACEHOLDERS = ("dev-only", "insecure", "changeme", "change-me", "change_me", "secret")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or any(p in SECRET_KEY.lower() for p in _PLACEHOLDERS):
    raise ImproperlyConfigured(
        "set SECRET_KEY in the environment for production: at least 50 random characters, e.g. "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'")
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
