from django.contrib import admin

from quantizer.models import QuantizerRun, SemanticId


@admin.register(QuantizerRun)
class QuantizerRunAdmin(admin.ModelAdmin):
    list_display = ("id", "flavor", "kind", "status", "is_active", "progress", "created_at")
    list_filter = ("flavor", "kind", "status", "is_active")


@admin.register(SemanticId)
class SemanticIdAdmin(admin.ModelAdmin):
    list_display = ("product", "run", "code", "token")
    search_fields = ("code", "product__external_id")
    raw_id_fields = ("product", "run")
