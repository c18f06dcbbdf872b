"""REST API for semantic IDs (by product, by prefix, cold-start assignment) and quantizer runs."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from accounts.permissions import IsAdmin, IsReviewer
from jobs.api import JobSerializer
from jobs.runner import start_job
from catalog.models import Flavor
from config.fields import NumberField, TextField
from config.filters import MAX_ID
from quantizer.models import QuantizerRun, SemanticId
from quantizer.selectors import products_by_prefix
from quantizer.assignment import code_for_record
from quantizer.inputs import EXTRA_INPUTS
from quantizer.services import NoActiveRun, activate_run, active_run, create_run

# --- serializers -------------------------------------------------------------------------------


class SemanticIdSerializer(serializers.ModelSerializer):
    flavor = serializers.CharField(source="run.flavor", read_only=True)
    full_id = serializers.CharField(read_only=True)
    external_id = serializers.CharField(source="product.external_id", read_only=True)
    product_name = serializers.CharField(source="product.name", read_only=True)
    category_path = serializers.CharField(source="product.category.path", default=None, read_only=True)

    class Meta:
        model = SemanticId
        fields = ["id", "product", "external_id", "product_name", "category_path", "run", "flavor", "code", "token",
                  "full_id", "codes", "reconstruction_error", "gaps"]


class SemanticIdQuerySerializer(serializers.Serializer):
    product = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID,
                                       help_text="the product's semantic IDs (one per active run)")
    prefix = TextField(required=False, help_text="products under a code prefix, e.g. 6_19",
                       validators=[RegexValidator(r"^\s*_*[0-9]+(_+[0-9]+)*_*\s*$",
                                                  "bad prefix: expected numbers joined by '_', e.g. 6_19")])
    flavor = serializers.ChoiceField(
        choices=Flavor.choices, required=False,
        help_text="whose active run to read; with prefix it defaults to precision",
    )


class AssignSerializer(serializers.Serializer):
    name = TextField(max_length=500, validators=[RegexValidator(r"\S", "a name, not only spaces")])
    brand = TextField(max_length=200, required=False, allow_blank=True, default="")
    description = TextField(required=False, allow_blank=True, default="")
    attributes = serializers.DictField(required=False, default=dict)
    flavor = serializers.ChoiceField(choices=Flavor.choices, default=Flavor.PRECISION)


class AssignResultSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    flavor = serializers.CharField()
    text = serializers.CharField(help_text="the product text that was embedded")
    codes = serializers.ListField(child=serializers.IntegerField())
    semantic_id = serializers.CharField()
    reconstruction_error = serializers.FloatField()
    gaps = serializers.ListField(child=serializers.FloatField(), help_text="nearest vs 2nd-nearest, per level")


class RunSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True, allow_null=True)

    class Meta:
        model = QuantizerRun
        # never the weights
        fields = ["id", "flavor", "kind", "status", "progress", "message", "embedding_model", "extra_input",
                  "extra_input_weight", "config", "seed", "metrics", "churn", "history", "is_active", "n_products",
                  "train_seconds", "warm_start_from",
                  "created_by", "created_at", "finished_at"]
        read_only_fields = fields


class RunCreateSerializer(serializers.Serializer):
    flavor = serializers.ChoiceField(choices=Flavor.choices)
    seed = serializers.IntegerField(default=0, min_value=0, max_value=2**31 - 1)
    kind = serializers.ChoiceField(choices=QuantizerRun.Kind.choices, default=QuantizerRun.Kind.RQVAE)
    contrastive_weight = NumberField(
        required=False, min_value=0.0, help_text="lambda of the contrastive term; 0 = the lambda=0 baseline"
    )
    extra_input = serializers.ChoiceField(
        choices=[""], required=False, default="", allow_blank=True,
        help_text='what the run reads beside the text: "copurchase" = each product\'s place among the imported '
                  'orders; "" = the text alone')

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["extra_input"].choices = ["", *sorted(EXTRA_INPUTS)]  # registered by the apps' ready()


class RunStartedSerializer(serializers.Serializer):
    run = RunSerializer()
    job = JobSerializer()


# --- views -------------------------------------------------------------------------------------


def _active_run(flavor: str) -> QuantizerRun:
    try:
        return active_run(flavor)
    except NoActiveRun as exc:
        raise NotFound(str(exc)) from None


class SemanticIdViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Semantic IDs of the active runs: all of them, a product's, or the products under a code prefix."""

    permission_classes = [IsReviewer]
    serializer_class = SemanticIdSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return SemanticId.objects.none()
        query = SemanticIdQuerySerializer(data=self.request.query_params.dict())
        query.is_valid(raise_exception=True)
        data = query.validated_data
        flavor = data.get("flavor")
        if "prefix" in data:
            try:
                queryset = products_by_prefix(run=_active_run(flavor or Flavor.PRECISION), prefix=data["prefix"])
            except ValueError as exc:
                raise ValidationError({"prefix": [str(exc)]}) from None
        else:
            queryset = SemanticId.objects.filter(run=_active_run(flavor)) if flavor else SemanticId.objects.filter(
                run__is_active=True)
            queryset = queryset.select_related("product__category").order_by("product_id", "run__flavor")
        if "product" in data:
            queryset = queryset.filter(product_id=data["product"])
        return queryset.select_related("run")

    @extend_schema(parameters=[SemanticIdQuerySerializer],
                   responses={200: SemanticIdSerializer(many=True), 404: OpenApiResponse(description="no active run")})
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=AssignSerializer,
        responses={200: AssignResultSerializer, 404: OpenApiResponse(description="no active run"),
                   409: OpenApiResponse(description="the active run has no learned weights (residual k-means)")},
        description="Cold start: the code the flavor's active run gives a product that is not in the catalog. "
                    "Nothing is written.",
    )
    @action(detail=False, methods=["post"], pagination_class=None)
    def assign(self, request):
        serializer = AssignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        record = dict(serializer.validated_data)
        flavor = record.pop("flavor")
        run = _active_run(flavor)
        if not run.has_weights:
            return Response({"detail": f"the active {flavor} run #{run.pk} ({run.kind}) has no learned weights; cold "
                                       "start needs an RQ-VAE run"}, status=status.HTTP_409_CONFLICT)
        return Response(AssignResultSerializer(code_for_record(record=record, flavor=flavor)).data)


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Quantizer runs: reviewers read them; admins start training and activate a run."""

    queryset = QuantizerRun.objects.select_related("created_by").order_by("-created_at", "-id")
    serializer_class = RunSerializer
    filterset_fields = ["flavor", "kind", "status", "is_active"]

    def get_permissions(self):
        return [IsAdmin()] if self.action in ("create", "activate") else [IsReviewer()]

    @extend_schema(request=RunCreateSerializer, responses={202: RunStartedSerializer},
                   description="Create a run and queue its training job (poll /api/jobs/{id}/ or the run).")
    def create(self, request):
        serializer = RunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        overrides = {"contrastive_weight": data["contrastive_weight"]} if "contrastive_weight" in data else None
        with transaction.atomic():
            run = create_run(flavor=data["flavor"], kind=data["kind"], seed=data["seed"], overrides=overrides,
                             extra_input=data["extra_input"], user=request.user)
            job = start_job(kind="train", params={"run_id": run.pk}, user=request.user)
        return Response({"run": RunSerializer(run).data, "job": JobSerializer(job).data},
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: RunSerializer, 409: OpenApiResponse(description="run not succeeded")})
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        run = self.get_object()
        try:
            activate_run(run)
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        run.refresh_from_db()
        return Response(RunSerializer(run).data)
