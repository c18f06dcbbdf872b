from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from jobs.kinds import register_job_kind

        register_job_kind("audit", "audit.runs.audit_job")
