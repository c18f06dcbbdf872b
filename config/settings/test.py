from .base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# pytest-django creates this database; the test worker connects to it by SEMID_DB_NAME.
DATABASES["default"]["TEST"] = {"NAME": "semid_test"}  # noqa: F405
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Tests use their own Redis database, so a running `make demo` worker never takes test tasks.
REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/1"  # noqa: F405
CELERY_BROKER_URL = CELERY_RESULT_BACKEND = REDIS_URL
SEMID_QUANTIZER_OVERRIDES = '{"epochs": 4, "batch_size": 256, "codebook_sizes": [16, 16, 16, 16]}'
# The session's worker listens on a queue of its own (tests/conftest.py); jobs it queues itself
# (an import queues its audit) must go there too.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("SEMID_TEST_CELERY_QUEUE", "celery")  # noqa: F405
SEMID_STALE_SWEEP_SECONDS = 0  # every claim sweeps: tests read the stale queue right after moving a product
