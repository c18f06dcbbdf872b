"""REST API of the baskets app: a product's complements (GET /api/products/{id}/complements/) and what customers
may add next (GET /api/products/{id}/next/, routed by baskets.api_urls)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from accounts.permissions import IsReviewer
from baskets.selectors import NEXT_PANEL_SIZE, PANEL_SIZE, complements, current_next_item_model, may_add_next
from baskets.services import MIN_PAIR_SUPPORT
from catalog.api import ProductSerializer
from catalog.models import Flavor, Product

MAX_COMPLEMENTS = 100


class ComplementQuerySerializer(serializers.Serializer):
    k = serializers.IntegerField(min_value=1, max_value=MAX_COMPLEMENTS, default=PANEL_SIZE)
    min_support = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, default=1,
        help_text=f"fewest orders the two share; the stored pairs already hold {MIN_PAIR_SUPPORT} and up")


class SharedPrefixSerializer(serializers.Serializer):
    flavor = serializers.CharField()
    prefix = serializers.CharField(allow_blank=True, help_text="the longest shared semantic-ID prefix; empty: none")
    levels = serializers.IntegerField()


class ComplementSerializer(serializers.Serializer):
    product = ProductSerializer()
    orders = serializers.IntegerField(help_text="orders holding both products")
    lift = serializers.FloatField(help_text="orders together / the orders expected if bought independently")
    pmi = serializers.FloatField(help_text="log2(lift)")
    above_chance = serializers.FloatField(
        help_text="how many times as often as chance (with the orders' sizes kept) the two are bought together at "
                  "least, at one-sided 95% confidence; always above 1 here, and the list's order")
    other_department = serializers.BooleanField(help_text="its top-level category differs from the product's")
    shared = SharedPrefixSerializer(many=True, help_text="one per flavor whose active run codes both products")


class ProductListView(GenericAPIView):
    """GET /api/products/{id}/...: a short list about one product, its query in `query_serializer`."""

    permission_classes = [IsReviewer]
    queryset = Product.objects.select_related("category")
    pagination_class = None
    filter_backends: list = []
    query_serializer: type[serializers.Serializer]

    def product_and_query(self, request) -> tuple[Product, dict]:
        product = self.get_object()
        query = self.query_serializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        return product, query.validated_data


class ComplementsView(ProductListView):
    serializer_class = ComplementSerializer
    query_serializer = ComplementQuerySerializer

    @extend_schema(
        parameters=[ComplementQuerySerializer],
        responses=ComplementSerializer(many=True),
        description="Products bought with this one far more often than chance: the co-purchase pairs of the "
                    "imported baskets (manage.py import_baskets) whose lift's one-sided 95% lower confidence bound "
                    "is above the lift of chance with the orders' sizes kept, the surest first (a pair of many "
                    "orders before one of six with a little more lift); empty when none.",
    )
    def get(self, request, pk=None):
        product, query = self.product_and_query(request)
        rows = complements(product=product, **query)
        return Response(ComplementSerializer(rows, many=True).data)


class NextQuerySerializer(serializers.Serializer):
    k = serializers.IntegerField(min_value=1, max_value=MAX_COMPLEMENTS, default=NEXT_PANEL_SIZE)
    flavor = serializers.ChoiceField(choices=Flavor.choices, required=False,
                                     help_text="the model of this flavor's active run (default: the newest model)")


class NextProductSerializer(serializers.Serializer):
    rank = serializers.IntegerField(help_text="1 = the model's first choice")
    product = ProductSerializer()
    semantic_id = serializers.CharField(source="code", help_text="its semantic ID under the model's run")
    flavor = serializers.CharField()
    model = serializers.IntegerField(help_text="the next-item model (baskets.NextItemModel) that decoded it")
    run = serializers.IntegerField(help_text="the quantizer run whose codes the model reads")


class NextProductsView(ProductListView):
    serializer_class = NextProductSerializer
    query_serializer = NextQuerySerializer

    @extend_schema(
        parameters=[NextQuerySerializer],
        responses=NextProductSerializer(many=True),
        description="Customers may add next: the products the next-item model (manage.py train_next_item) decodes, "
                    "semantic ID by semantic ID under a prefix trie of the codes that exist, after a basket "
                    "holding this product; empty when no model is trained on an active run or the run does not "
                    "code the product.",
    )
    def get(self, request, pk=None):
        product, query = self.product_and_query(request)
        record = current_next_item_model(query.get("flavor"))
        if record is None:
            return Response([])
        rows = may_add_next(product=product, k=query["k"], flavor=record.run.flavor)
        data = [{"rank": r.rank, "product": r.product, "code": r.code, "flavor": record.run.flavor,
                 "model": record.pk, "run": record.run_id} for r in rows]
        return Response(NextProductSerializer(data, many=True).data)
