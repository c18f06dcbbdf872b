"""Token authentication for the API: DRF's tokens, refused (and deleted) once SEMID_TOKEN_TTL_HOURS old.
Kept apart from accounts.auth: DRF imports this module while it loads its own settings."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed


def token_expires_at(token: Token):
    return token.created + timedelta(hours=settings.SEMID_TOKEN_TTL_HOURS)


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, refusing (and deleting) a token older than SEMID_TOKEN_TTL_HOURS."""

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if token_expires_at(token) <= timezone.now():
            token.delete()
            raise AuthenticationFailed("token expired: ask POST /api/token/ for a new one")
        return user, token
