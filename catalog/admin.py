from django.contrib import admin

from catalog.models import Category, Product, ProductEmbedding


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("path", "depth")
    search_fields = ("path",)
    list_filter = ("depth",)
    raw_id_fields = ("parent",)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("external_id", "name", "brand", "category", "updated_at")
    search_fields = ("external_id", "name", "brand")
    list_select_related = ("category",)
    raw_id_fields = ("category",)
    readonly_fields = ("extracted", "created_at", "updated_at")


@admin.register(ProductEmbedding)
class ProductEmbeddingAdmin(admin.ModelAdmin):
    list_display = ("product", "flavor", "model_name", "updated_at")
    list_filter = ("flavor",)
    raw_id_fields = ("product",)
    exclude = ("embedding",)
