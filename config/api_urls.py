"""The REST API, included under `api/` by config.urls. Schema at schema/, Swagger UI at docs/."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import IsAuthenticated
from rest_framework.routers import DefaultRouter

from accounts.auth import ObtainExpiringToken
from audit.api import DecisionViewSet, FlagViewSet, QueuesView
from baskets.api import ComplementsView
from catalog.api import CategoryViewSet, ImportView
from jobs.api import JobViewSet
from pipeline.api import ProductViewSet
from quantizer.api import RunViewSet, SemanticIdViewSet

router = DefaultRouter()
router.register("products", ProductViewSet, basename="product")
router.register("categories", CategoryViewSet, basename="category")
router.register("semantic-ids", SemanticIdViewSet, basename="semantic-id")
router.register("flags", FlagViewSet, basename="flag")
router.register("decisions", DecisionViewSet, basename="decision")
router.register("runs", RunViewSet, basename="run")
router.register("jobs", JobViewSet, basename="job")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema", permission_classes=[IsAuthenticated]),
         name="api-docs"),
    path("token/", ObtainExpiringToken.as_view(), name="api-token"),
    path("imports/", ImportView.as_view(), name="api-import"),
    path("queues/", QueuesView.as_view(), name="api-queues"),
    re_path(r"^products/(?P<pk>[^/.]+)/complements/$", ComplementsView.as_view(), name="api-product-complements"),
    path("", include("baskets.api_urls")),  # GET products/{id}/next/
    path("", include(router.urls)),
]
