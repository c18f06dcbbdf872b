from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    """Roles, their checks for pages and the API, and expiring API tokens: the base every app stands on."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import auth  # noqa: F401  (connects the token revocation receivers)

        # After every app's migrations, the roles hold the permissions of the models as they are now (a model
        # that moved app, like jobs.Job, has new permission rows).
        post_migrate.connect(_sync_roles, dispatch_uid="accounts-sync-roles")


def _sync_roles(*, app_config, **kwargs) -> None:
    """Once per migrate (or test flush): after the last installed app's post_migrate, when every model's
    permissions exist."""
    from django.apps import apps

    from accounts.roles import ensure_roles

    if app_config is list(apps.get_app_configs())[-1]:
        ensure_roles()
