"""View guards for the two roles (accounts.roles): a reviewer page and an admin page."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from accounts.roles import is_admin, is_reviewer


def _role_required(check, what):
    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not check(request.user):
                raise PermissionDenied(f"this page is for {what}")
            return view(request, *args, **kwargs)
        return wrapped
    return decorator


reviewer_required = _role_required(is_reviewer, "reviewers")
admin_required = _role_required(is_admin, "admins")
