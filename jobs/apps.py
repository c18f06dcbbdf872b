from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Background jobs: the `Job` row a page reads, the runner, the one Celery task. Each app registers
    the kinds of job it runs in its own `AppConfig.ready()` (`jobs.kinds.register_job_kind`)."""

    name = "jobs"
    default_auto_field = "django.db.models.BigAutoField"
