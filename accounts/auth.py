"""API tokens: the endpoint that hands them out, and their revocation on logout and password change."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import pre_save
from django.dispatch import receiver
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response

from accounts.authentication import token_expires_at


class ObtainExpiringToken(ObtainAuthToken):
    """The user's token, a new one when the old has expired; answers with when it expires."""

    @extend_schema(responses={
        200: inline_serializer("TokenResponse", {"token": serializers.CharField(), "expires_at": serializers.DateTimeField()}),
        401: OpenApiResponse(description="wrong username or password"),
        429: OpenApiResponse(description="locked out after too many wrong passwords (django-axes)"),
    })
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            if getattr(request, "axes_locked_out", False):  # set by django-axes while it refuses this username
                return Response({"detail": "too many wrong passwords: try again later"}, status=429)
            wrong = "non_field_errors" in serializer.errors  # both fields given: the credentials are wrong
            if wrong:
                return Response(serializer.errors, status=401, headers={"WWW-Authenticate": "Token"})
            return Response(serializer.errors, status=400)
        user = serializer.validated_data["user"]
        Token.objects.filter(user=user, created__lte=timezone.now() - timedelta(hours=settings.SEMID_TOKEN_TTL_HOURS)).delete()
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key, "expires_at": token_expires_at(token)})


@receiver(user_logged_out, dispatch_uid="semid-revoke-token-on-logout")
def revoke_token_on_logout(sender, request, user, **kwargs):
    if user is not None:
        Token.objects.filter(user=user).delete()


@receiver(pre_save, sender=get_user_model(), dispatch_uid="semid-revoke-token-on-password-change")
def revoke_token_on_password_change(sender, instance, **kwargs):
    if instance.pk is None:
        return
    before = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if before is not None and before != instance.password:
        Token.objects.filter(user_id=instance.pk).delete()
