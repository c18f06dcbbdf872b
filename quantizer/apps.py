from django.apps import AppConfig


class QuantizerConfig(AppConfig):
    name = "quantizer"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from catalog.jobs import job_abandoned
        from quantizer.services import fail_runs_of_abandoned_job

        job_abandoned.connect(fail_runs_of_abandoned_job, dispatch_uid="quantizer-fail-runs-of-abandoned-job")
