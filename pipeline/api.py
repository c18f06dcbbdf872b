"""API views that show several apps: a product with the semantic IDs of the active runs."""

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog import api as catalog_api
from quantizer.models import SemanticId


class ProductSemanticIdSerializer(serializers.ModelSerializer):
    flavor = serializers.CharField(source="run.flavor", read_only=True)
    full_id = serializers.CharField(read_only=True)

    class Meta:
        model = SemanticId
        fields = ["run", "flavor", "code", "token", "full_id", "codes", "reconstruction_error", "gaps"]


class ProductDetailSerializer(catalog_api.ProductDetailSerializer):
    semantic_ids = serializers.SerializerMethodField(help_text="one per active run (flavor)")

    class Meta(catalog_api.ProductDetailSerializer.Meta):
        fields = [*catalog_api.ProductDetailSerializer.Meta.fields, "semantic_ids"]

    @extend_schema_field(ProductSemanticIdSerializer(many=True))
    def get_semantic_ids(self, product):
        return ProductSemanticIdSerializer(product.active_semantic_ids, many=True).data


class ProductViewSet(catalog_api.ProductViewSet):
    """The catalog's products; one product also lists its semantic IDs in the active runs."""

    detail_serializer_class = ProductDetailSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "retrieve":
            active = SemanticId.objects.filter(run__is_active=True).select_related("run").order_by("run__flavor")
            queryset = queryset.prefetch_related(Prefetch("semantic_ids", queryset=active, to_attr="active_semantic_ids"))
        return queryset
