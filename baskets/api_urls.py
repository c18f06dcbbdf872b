"""API routes of the baskets app, included under api/ by config.api_urls."""

from django.urls import re_path

from baskets.api import NextProductsView

urlpatterns = [
    re_path(r"^products/(?P<pk>[^/.]+)/next/$", NextProductsView.as_view(), name="api-product-next"),
]
