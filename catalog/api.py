"""REST API for the catalog: products, categories, similar products, imports and jobs."""

from __future__ import annotations

import django_filters
from django.db.models import Prefetch, Q
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin, IsReviewer
from config.filters import FilterSet, IdFilter, IntegerFilter
from catalog.embeddings import similar_products
from catalog.jobs import fail_abandoned_jobs, retry_job
from catalog.models import PATH_SEPARATOR, Category, Flavor, Job, Product
from catalog.services import start_upload_import, upload_problem
from quantizer.models import SemanticId

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


class ProductSemanticIdSerializer(serializers.ModelSerializer):
    flavor = serializers.CharField(source="run.flavor", read_only=True)
    full_id = serializers.CharField(read_only=True)

    class Meta:
        model = SemanticId
        fields = ["run", "flavor", "code", "token", "full_id", "codes", "reconstruction_error", "gaps"]


class ProductDetailSerializer(ProductSerializer):
    category = CategorySerializer(read_only=True)
    semantic_ids = serializers.SerializerMethodField(help_text="one per active run (flavor)")

    class Meta(ProductSerializer.Meta):
        fields = [*ProductSerializer.Meta.fields, "description", "size", "attributes", "extracted", "semantic_ids",
                  "created_at"]

    @extend_schema_field(ProductSemanticIdSerializer(many=True))
    def get_semantic_ids(self, product):
        return ProductSemanticIdSerializer(product.active_semantic_ids, many=True).data


class SimilarProductSerializer(serializers.Serializer):
    product = ProductSerializer()
    similarity = serializers.FloatField()


class SimilarQuerySerializer(serializers.Serializer):
    flavor = serializers.ChoiceField(choices=Flavor.choices, default=Flavor.PRECISION)
    k = serializers.IntegerField(min_value=1, max_value=MAX_SIMILAR, default=10)


class JobSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = ["id", "kind", "status", "progress", "message", "result", "created_by", "created_at", "updated_at"]


class ImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="a catalog file: .csv or .jsonl (see the import format)")
    allow_new_categories = serializers.BooleanField(
        default=False, help_text="create the categories the file names that the taxonomy lacks (listed in the job's "
                                 "result); otherwise an unknown path is a row error")
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

    def get_queryset(self):
        queryset = Product.objects.select_related("category").order_by("id")
        if self.action == "retrieve":
            active = SemanticId.objects.filter(run__is_active=True).select_related("run").order_by("run__flavor")
            queryset = queryset.prefetch_related(
                Prefetch("semantic_ids", queryset=active, to_attr="active_semantic_ids"))
        return queryset

    def get_serializer_class(self):
        return ProductDetailSerializer if self.action == "retrieve" else ProductSerializer

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


class JobViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Background jobs (imports, training): status, progress, and the result (row errors on a bad file)."""

    permission_classes = [IsAdmin]
    queryset = Job.objects.select_related("created_by").order_by("-created_at", "-id")
    serializer_class = JobSerializer
    filterset_fields = ["kind", "status"]

    def get_queryset(self):
        fail_abandoned_jobs()  # a job whose worker died reads as failed
        return super().get_queryset()

    @extend_schema(request=None, responses={202: JobSerializer})
    @action(detail=True, methods=["post"], pagination_class=None)
    def retry(self, request, pk=None):
        """Queue a failed job again as a new job with the same parameters."""
        job = self.get_object()
        try:
            again = retry_job(job=job, user=request.user)
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(JobSerializer(again).data, status=status.HTTP_202_ACCEPTED)


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
                                  allow_new_categories=serializer.validated_data["allow_new_categories"])
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

