from django.apps import AppConfig


class QuantizerConfig(AppConfig):
    name = "quantizer"
    default_auto_field = "django.db.models.BigAutoField"
