from django.conf import settings
from django.contrib import admin
from django.contrib.auth import urls as auth_urls
from django.http import JsonResponse
from django.urls import include, path
from django.views import defaults

from audit import views as audit_views
from catalog import views as catalog_views
from jobs import views as job_views
from pipeline import views as pipeline_views
from quantizer import views as quantizer_views

# Password reset sends mail: offered only where a mail server is configured (EMAIL_HOST).
account_urls = [p for p in auth_urls.urlpatterns if settings.EMAIL_HOST or not p.name.startswith("password_reset")]


def not_found(request, exception):
    """A URL that matches nothing: JSON under /api/, as every API answer is; the page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


handler404 = not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include(account_urls)),
    path("", audit_views.home, name="home"),
    path("review/start/", audit_views.start_review, name="ui-review-start"),
    path("review/undo/", audit_views.undo, name="ui-review-undo"),
    path("", include("audit.urls")),
    path("flags/<int:pk>/", audit_views.flag_detail, name="flag"),
    path("flags/<int:pk>/claim/", audit_views.flag_claim, name="ui-flag-claim"),
    path("flags/<int:pk>/decide/", audit_views.flag_decide, name="ui-flag-decide"),
    path("flags/<int:pk>/next/", audit_views.flag_next, name="ui-flag-next"),
    path("categories/search/", catalog_views.category_search, name="ui-category-search"),
    path("products/<int:pk>/", pipeline_views.product_detail, name="product"),
    path("import/", catalog_views.import_page, name="import"),
    path("jobs/<int:pk>/", job_views.job_detail, name="job"),
    path("jobs/<int:pk>/retry/", job_views.job_retry, name="job-retry"),
    path("clusters/", quantizer_views.clusters, name="clusters"),
    path("runs/", pipeline_views.runs, name="runs"),
    path("runs/pipeline/", pipeline_views.run_pipeline, name="ui-run-pipeline"),
    path("runs/next-item/", pipeline_views.train_next_item, name="ui-train-next-item"),
    path("runs/<int:pk>/activate/", quantizer_views.activate, name="ui-run-activate"),
    path("api/", include("config.api_urls")),
]
