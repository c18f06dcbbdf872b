from django.apps import AppConfig


class PipelineConfig(AppConfig):
    """The top layer: flows that cross apps (import -> assign -> audit; embed -> train -> audit), the demo
    commands and the pages that show several apps. Nothing below imports it."""

    name = "pipeline"

    def ready(self):
        from jobs.kinds import register_job_kind

        register_job_kind("import", "pipeline.services.import_job", short=True)
        register_job_kind("pipeline", "pipeline.services.pipeline_job")
