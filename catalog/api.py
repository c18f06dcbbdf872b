"""REST API for the catalog: products, categories, similar products and imports."""

from __future__ import annotations

import django_filters
from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin, IsReviewer
from catalog.embeddings import similar_products
from catalog.models import PATH_SEPARATOR, Category, Flavor, Product
from catalog.services import start_upload_import, upload_problem
from config.filters import FilterSet, IdFilter, IntegerFilter
from jobs.api import JobSerializer

MAX_SIMILAR = 100


# --- serializers -------------------------------------------------------------------------------


class CategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["id", "name", "path", "depth", "parent"]


class ProductSerializer(serializers.ModelSerializer):
    category_path = serializers.CharField(source="category.path", default=None, read_only=True)

    class Meta:
        model = Product
        fields = ["id", "external_id", "name", "brand", "category", "category_path", "updated_at"]


class ProductDetailSerializer(ProductSerializer):
    category = CategorySerializer(read_only=True)

    class Meta(ProductSerializer.Meta):
        fields = [*ProductSerializer.Meta.fields, "description", "size", "attributes", "extracted", "created_at"]


class SimilarProductSerializer(serializers.Serializer):
    product = ProductSerializer()
    similarity = serializers.FloatField()


class SimilarQuerySerializer(serializers.Serializer):
    flavor = serializers.ChoiceField(choices=Flavor.choices, default=Flavor.PRECISION)
    k = serializers.IntegerField(min_value=1, max_value=MAX_SIMILAR, default=10)


class ImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="a catalog file: .csv or .jsonl (see the import format)")
    allow_new_categories = serializers.BooleanField(
        default=False, help_text="create the categories the file names that the taxonomy lacks (listed in the job's "
                                 "result); otherwise an unknown path is a row error")
    allow_uncategorized = serializers.BooleanField(
        default=False, help_text="import a row with an empty category_path as a product without a category "
                                 "(the audit suggests one); otherwise an empty path is a row error")
    overwrite = serializers.BooleanField(
        default=False, help_text="move products whose category was changed since their last import "
                                 "(by a reviewer, an admin or the API); otherwise such rows are listed as conflicts")

    def validate_file(self, file):
        problem = upload_problem(name=file.name, size=file.size)
        if problem:
            raise serializers.ValidationError(problem)
        return file


# --- filters -------------------------------------------------------------------------------------


class ProductFilter(FilterSet):
    category = IdFilter(method="in_category", help_text="category id; includes its subcategories")
    brand = django_filters.CharFilter(lookup_expr="iexact")
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains", help_text="part of the name")

    class Meta:
        model = Product
        fields = ["category", "brand", "search"]

    def in_category(self, queryset, name, category_id):
        category = Category.objects.filter(pk=category_id).first()
        if category is None:
            return queryset.none()
        return queryset.filter(Q(category=category) | Q(category__path__startswith=category.path + PATH_SEPARATOR))


class CategoryFilter(FilterSet):
    q = django_filters.CharFilter(field_name="path", lookup_expr="icontains", help_text="part of the path")
    depth = IntegerFilter()
    parent = IdFilter(help_text="the parent category's id")

    class Meta:
        model = Category
        fields = ["q", "depth", "parent"]


# --- views -------------------------------------------------------------------------------------


class ProductViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [IsReviewer]
    filterset_class = ProductFilter
    queryset = Product.objects.select_related("category").order_by("id")
    detail_serializer_class = ProductDetailSerializer

    def get_serializer_class(self):
        return self.detail_serializer_class if self.action == "retrieve" else ProductSerializer

    @extend_schema(
        parameters=[SimilarQuerySerializer],
        responses=SimilarProductSerializer(many=True),
        description="The k nearest products by cosine similarity of the flavor's embeddings (empty when the "
                    "product has no embedding of that flavor).",
    )
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def similar(self, request, pk=None):
        product = self.get_object()
        query = SimilarQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        pairs = similar_products(product=product, **query.validated_data)
        data = [{"product": other, "similarity": similarity} for other, similarity in pairs]
        return Response(SimilarProductSerializer(data, many=True).data)


class CategoryViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [IsReviewer]
    queryset = Category.objects.order_by("path")
    serializer_class = CategorySerializer
    filterset_class = CategoryFilter


class ImportView(APIView):
    """Upload a catalog file; it is validated and imported by a background job (poll /api/jobs/{id}/)."""

    permission_classes = [IsAdmin]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request={"multipart/form-data": ImportSerializer}, responses={202: JobSerializer})
    def post(self, request):
        serializer = ImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = start_upload_import(upload=serializer.validated_data["file"], user=request.user,
                                  overwrite=serializer.validated_data["overwrite"],
                                  allow_new_categories=serializer.validated_data["allow_new_categories"],
                                  allow_uncategorized=serializer.validated_data["allow_uncategorized"])
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

