"""API permissions: the same two roles as the UI (accounts.roles)."""

from rest_framework.permissions import BasePermission

from accounts.roles import is_admin, is_reviewer


class IsReviewer(BasePermission):
    """Reviewers (and admins) read the catalog and claim and decide flags."""

    message = "this needs the reviewer or admin role"

    def has_permission(self, request, view) -> bool:
        return is_reviewer(request.user)


class IsAdmin(BasePermission):
    """Admins also import catalogs, train and activate runs, and decide flags in bulk."""

    message = "this needs the admin role"

    def has_permission(self, request, view) -> bool:
        return is_admin(request.user)
