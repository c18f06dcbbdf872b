from django.apps import AppConfig


class BasketsConfig(AppConfig):
    name = "baskets"
    default_auto_field = "django.db.models.BigAutoField"
