from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from jobs.kinds import register_job_kind

        register_job_kind("embed", "catalog.embeddings.embed_job")
