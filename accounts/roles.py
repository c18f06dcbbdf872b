"""The two roles: reviewers claim and decide flags; admins also run imports, training and audits."""

from django.contrib.auth.models import Group, Permission

REVIEWER, ADMIN = "reviewer", "admin"
ROLE_PERMISSIONS = {
    REVIEWER: ["view_flag", "change_flag", "view_decision", "add_decision", "view_product", "view_category"],
    ADMIN: [
        "view_flag", "change_flag", "view_decision", "add_decision", "view_product", "change_product",
        "add_product", "view_category", "add_category", "change_category", "view_quantizerrun",
        "add_quantizerrun", "change_quantizerrun", "view_job", "add_job",
    ],
}


def ensure_roles() -> dict[str, Group]:
    groups = {}
    for name, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(Permission.objects.filter(codename__in=codenames))
        groups[name] = group
    return groups


def is_admin(user) -> bool:
    return bool(user and user.is_authenticated and (user.is_superuser or user.groups.filter(name=ADMIN).exists()))


def is_reviewer(user) -> bool:
    return bool(
        user and user.is_authenticated and (user.is_superuser or user.groups.filter(name__in=[REVIEWER, ADMIN]).exists())
    )
