from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from audit.runs import remove_fits_of_abandoned_job
        from jobs.runner import job_abandoned, register_job_kind

        register_job_kind("audit", "audit.runs.audit_job")
        job_abandoned.connect(remove_fits_of_abandoned_job, dispatch_uid="audit-remove-fits-of-abandoned-job")
