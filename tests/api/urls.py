"""Used by the API tests only while config.urls does not include the API yet."""

from django.urls import include, path

urlpatterns = [path("api/", include("config.api_urls"))]
