"""REST API for the review workflow: flags, claims, decisions, undo, bulk decisions, queue figures."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin, IsReviewer
from audit.evidence import Evidence
from audit.models import Decision, Flag, Queue
from audit.review import ReviewError
from audit.review.claims import claim_flag, claim_next_flag
from audit.review.decisions import batch_refusal, bulk_decide, decide_flag, undo_last_decisions
from audit.selectors import filter_flags, queue_stats, second_review_agreement
from catalog.models import Category, Flavor
from config.fields import NumberField, TextField
from config.filters import FilterSet, FractionFilter, IdFilter

MAX_UNDO = 50
REVIEW_ACTIONS = [a for a in Decision.Action.values if a != Decision.Action.UNDO]
CONFLICT = OpenApiResponse(description="the action cannot be done as asked (claimed by another reviewer, "
                                       "already decided, stale, ...); `detail` says why")

# --- serializers -------------------------------------------------------------------------------


class CategoryRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["id", "path"]


class FlagProductSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    name = serializers.CharField()
    brand = serializers.CharField()
    category = serializers.IntegerField(source="category_id", allow_null=True)
    updated_at = serializers.DateTimeField()


# Not an enum in the schema: runs and jobs have a "status" enum too, and two would collide on the name.
@extend_schema_field({"type": "string", "description": "one of " + ", ".join(Flag.Status.values)})
class FlagStatusField(serializers.ChoiceField):
    pass


@extend_schema_field({"type": "object", "description": (
    "why the flag was raised: `cluster` (the deepest code prefix with enough members: prefix, level, size, and "
    "`composition`, [category path, members] largest first), `neighbours` (the most similar labelled products: "
    "product, external_id, name, label, similarity), `suggestions` ([category path, probability]), `signals` "
    "(per signal, how strongly it says the label is wrong), `brand_led`, and `flavors` (the other flavor's view "
    "of a product both flagged: suggested, confidence)")})
class EvidenceField(serializers.Field):
    """`Flag.evidence` read through `audit.evidence.Evidence`."""

    def to_representation(self, value):
        return Evidence.from_json(value).to_json()


class FlagSerializer(serializers.ModelSerializer):
    status = FlagStatusField(choices=Flag.Status.choices, read_only=True)
    evidence = EvidenceField(read_only=True)
    product = FlagProductSerializer(read_only=True)
    flavor = serializers.CharField(source="run.flavor", read_only=True)
    label = CategoryRefSerializer(read_only=True, help_text="the product's category when it was scored")
    suggested = CategoryRefSerializer(read_only=True)
    claimed_by = serializers.CharField(source="claimed_by.username", default=None, read_only=True, allow_null=True)

    class Meta:
        model = Flag
        fields = ["id", "product", "run", "flavor", "queue", "status", "label", "suggested", "confidence", "priority",
                  "evidence", "product_updated_at", "claimed_by", "claim_expires_at", "needs_second_review",
                  "second_review_agrees", "created_at", "updated_at"]
        read_only_fields = fields


class DecisionSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.username", read_only=True)
    from_category = CategoryRefSerializer(read_only=True)
    to_category = CategoryRefSerializer(read_only=True)
    flag_status = serializers.CharField(source="flag.status", read_only=True, help_text="the flag's status now")

    class Meta:
        model = Decision
        fields = ["id", "flag", "flag_status", "product", "reviewer", "action", "from_category", "to_category",
                  "flag_status_before", "note", "is_second_review", "reverts", "created_at"]
        read_only_fields = fields


class FlagFiltersSerializer(serializers.Serializer):
    department = TextField(required=False, allow_blank=True, help_text="top-level category name")
    min_confidence = NumberField(required=False, min_value=0.0, max_value=1.0)
    max_confidence = NumberField(required=False, min_value=0.0, max_value=1.0)
    flavor = serializers.ChoiceField(choices=Flavor.choices, required=False)
    run = serializers.IntegerField(required=False)


class ClaimSerializer(FlagFiltersSerializer):
    queue = serializers.ChoiceField(choices=Queue.choices, default=Queue.MISLABEL)


class DecideSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=REVIEW_ACTIONS)
    category = serializers.PrimaryKeyRelatedField(
        queryset=Category.objects.all(), required=False, allow_null=True, help_text="the new category (reassign)"
    )
    note = TextField(required=False, allow_blank=True, default="")

    def validate(self, data):
        if data["action"] == Decision.Action.REASSIGN and not data.get("category"):
            raise serializers.ValidationError({"category": ["reassign needs a category"]})
        return data


class UndoSerializer(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, max_value=MAX_UNDO, default=1)


class BulkSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=5000)
    action = serializers.ChoiceField(choices=[Decision.Action.ACCEPT, Decision.Action.REJECT])
    note = TextField(required=False, allow_blank=True, default="")

    def validate_ids(self, ids):
        return list(dict.fromkeys(ids))


class BulkResultSerializer(serializers.Serializer):
    decided = serializers.IntegerField()
    skipped = serializers.ListField(child=serializers.IntegerField(), help_text="stale flags, left for review")
    decisions = DecisionSerializer(many=True)


class QueueStatSerializer(serializers.Serializer):
    queue = serializers.CharField()
    label = serializers.CharField()
    open = serializers.IntegerField()
    decided_today = serializers.IntegerField()


class AgreementSerializer(serializers.Serializer):
    reviewed = serializers.IntegerField()
    agreement = serializers.FloatField(allow_null=True)


class QueuesSerializer(serializers.Serializer):
    queues = QueueStatSerializer(many=True)
    second_review = AgreementSerializer()


# --- filters -------------------------------------------------------------------------------------


class FlagFilter(FilterSet):
    """queue and status here; department, confidence, flavor and run through audit.selectors.filter_flags."""

    queue = django_filters.ChoiceFilter(choices=Queue.choices, method="in_queue")
    status = django_filters.MultipleChoiceFilter(choices=Flag.Status.choices)
    department = django_filters.CharFilter(method="by_selector", help_text="top-level category name")
    min_confidence = FractionFilter(method="by_selector")
    max_confidence = FractionFilter(method="by_selector")
    flavor = django_filters.ChoiceFilter(choices=Flavor.choices, method="by_selector")
    run = IdFilter(method="by_selector")

    class Meta:
        model = Flag
        fields = ["queue", "status", "department", "min_confidence", "max_confidence", "flavor", "run"]

    def in_queue(self, queryset, name, queue):
        return queryset.in_queue(queue, every_status=True)  # the status filter narrows it

    def by_selector(self, queryset, name, value):
        return queryset  # applied together in filter_queryset

    def filter_queryset(self, queryset):
        return filter_flags(super().filter_queryset(queryset), self.form.cleaned_data)


class DecisionFilter(FilterSet):
    class Meta:
        model = Decision
        fields = ["product", "reviewer", "flag", "action"]


# --- views -------------------------------------------------------------------------------------


def _conflict(exc: Exception) -> Response:
    return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)


class FlagViewSet(viewsets.ReadOnlyModelViewSet):
    """Flags raised by the audit, and the review actions on them (same rules as the review pages)."""

    serializer_class = FlagSerializer
    filterset_class = FlagFilter

    def get_queryset(self):
        return (Flag.objects.select_related("product", "run", "label", "suggested", "claimed_by")
                .order_by("-priority", "id"))

    def get_permissions(self):
        return [IsAdmin()] if self.action == "bulk" else [IsReviewer()]

    def _flag(self, flag: Flag) -> Response:
        return Response(FlagSerializer(self.get_queryset().get(pk=flag.pk)).data)

    @extend_schema(request=ClaimSerializer,
                   responses={200: FlagSerializer, 204: OpenApiResponse(description="the queue is empty")},
                   operation_id="flags_claim_next",
                   description="Lease the highest-priority flag of a queue (or the one you already hold).")
    @action(detail=False, methods=["post"], url_path="claim", filterset_class=None, pagination_class=None)
    def claim_next(self, request):
        serializer = ClaimSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        filters = dict(serializer.validated_data)
        queue = filters.pop("queue")
        flag = claim_next_flag(reviewer=request.user, queue=queue, filters=filters)
        if flag is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return self._flag(flag)

    @extend_schema(request=None, responses={200: FlagSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"], url_path="claim", filterset_class=None)
    def claim(self, request, pk=None):
        try:
            flag = claim_flag(flag=self.get_object(), reviewer=request.user)
        except ReviewError as exc:
            return _conflict(exc)
        return self._flag(flag)

    @extend_schema(request=DecideSerializer, responses={201: DecisionSerializer, 409: CONFLICT},
                   description="accept (move to the suggested category), reject, reassign (to `category`), defer, "
                               "or comment. The decision and the catalog change are one transaction.")
    @action(detail=True, methods=["post"], filterset_class=None)
    def decide(self, request, pk=None):
        serializer = DecideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            decision = decide_flag(flag=self.get_object(), reviewer=request.user, action=data["action"],
                                   category=data.get("category"), note=data["note"])
        except ReviewError as exc:  # FlagStale included
            return _conflict(exc)
        return Response(DecisionSerializer(decision).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=UndoSerializer, responses={200: DecisionSerializer(many=True), 409: CONFLICT},
                   description="Revert your last `count` decisions (the catalog change and the flag state).")
    @action(detail=False, methods=["post"], filterset_class=None, pagination_class=None)
    def undo(self, request):
        serializer = UndoSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            undone = undo_last_decisions(reviewer=request.user, count=serializer.validated_data["count"])
        except ReviewError as exc:
            return _conflict(exc)
        return Response(DecisionSerializer(undone, many=True).data)

    @extend_schema(request=BulkSerializer, responses={200: BulkResultSerializer, 409: CONFLICT},
                   description="Admins accept or reject many flags; stale flags are skipped. Unknown ids: 404; "
                               "a decided flag, or accepting one without a suggestion, refuses the batch: 409.")
    @action(detail=False, methods=["post"], filterset_class=None, pagination_class=None)
    def bulk(self, request):
        serializer = BulkSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        flags = list(Flag.objects.filter(pk__in=data["ids"]).order_by("id"))
        missing = sorted(set(data["ids"]) - {f.pk for f in flags})
        if missing:
            raise NotFound(f"unknown flag id(s): {', '.join(map(str, missing))}")
        refusal = batch_refusal(flags, data["action"])
        if refusal:
            return _conflict(refusal)
        try:
            decisions = bulk_decide(flags=flags, reviewer=request.user, action=data["action"], note=data["note"])
        except ReviewError as exc:
            return _conflict(exc)
        decided = {d.flag_id for d in decisions}
        return Response({
            "decided": len(decisions),
            "skipped": [f.pk for f in flags if f.pk not in decided],
            "decisions": DecisionSerializer(decisions, many=True).data,
        })


class DecisionViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [IsReviewer]
    serializer_class = DecisionSerializer
    filterset_class = DecisionFilter
    queryset = Decision.objects.select_related("reviewer", "flag", "from_category", "to_category").order_by(
        "-created_at", "-id")


class QueuesView(APIView):
    """Open flags and today's decisions per queue, and the second-review agreement."""

    permission_classes = [IsReviewer]

    @extend_schema(parameters=[FlagFiltersSerializer], responses=QueuesSerializer)
    def get(self, request):
        filters = FlagFiltersSerializer(data=request.query_params.dict())  # a plain dict: "?flavor=" is refused, not dropped
        filters.is_valid(raise_exception=True)
        return Response(QueuesSerializer({
            "queues": queue_stats(filters=filters.validated_data),
            "second_review": second_review_agreement(),
        }).data)

