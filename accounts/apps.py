from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Roles, their checks for pages and the API, and expiring API tokens: the base every app stands on."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import auth  # noqa: F401  (connects the token revocation receivers)
