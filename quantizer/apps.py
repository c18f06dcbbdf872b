from django.apps import AppConfig


class QuantizerConfig(AppConfig):
    name = "quantizer"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from jobs.kinds import register_job_kind
        from jobs.runner import job_abandoned
        from quantizer.services import fail_runs_of_abandoned_job

        register_job_kind("train", "quantizer.fanout.train_job")
        job_abandoned.connect(fail_runs_of_abandoned_job, dispatch_uid="quantizer-fail-runs-of-abandoned-job")
