"""Orders (baskets) as lines, and the co-purchase pairs computed from them in bulk."""

from django.db import models
from django.db.models import F, Q

from catalog.models import Product


class BasketLine(models.Model):
    """One product in one order, as `import_baskets` reads it. An order is the set of its lines.

    The key (order, product) is also the index of the self-join by order (baskets.services.COPURCHASE_SQL)
    and of the import's upsert: a product is in an order once (its quantity is not part of the data).
    Positions are unique within an order too; the import checks that (an index of its own would slow every
    load for a query nobody runs)."""

    pk = models.CompositePrimaryKey("order_id", "product")
    order_id = models.BigIntegerField()  # the shop's order number, not a row of ours
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="basket_lines")
    add_to_cart_order = models.PositiveIntegerField()  # 1 = first product put in the cart
    reordered = models.BooleanField(null=True)  # None: the file had no reordered column

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(add_to_cart_order__gte=1), name="basket_line_position_from_1"),
        ]

    def __str__(self):
        return f"order {self.order_id} #{self.add_to_cart_order}: product {self.product_id}"


class CoPurchase(models.Model):
    """Two products bought in the same orders, stored once (product_a < product_b), for pairs seen in at
    least MIN_PAIR_SUPPORT orders. Rewritten whole by `baskets.services.compute_copurchase`.

    lift = P(a and b) / (P(a) P(b)) = orders · N / (orders with a · orders with b), N = all orders:
    1 is chance, 3 is three times as often as chance. pmi = log2(lift)."""

    # A product's partners: as product_a through the key, as product_b through its own index. No foreign
    # key constraints: the pairs are derived from basket lines (whose products are checked) and rewritten
    # whole; checking them cost 5.9 s of an import (2 x 382,907 references). Deleting a product through
    # Django still deletes its pairs (on_delete).
    pk = models.CompositePrimaryKey("product_a", "product_b")
    product_a = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+", db_index=False,
                                  db_constraint=False)
    product_b = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    orders = models.PositiveIntegerField()  # orders holding both (the support)
    lift = models.FloatField()
    pmi = models.FloatField()
    # How many times chance the pair is bought together at least: the lift's one-sided 95% lower bound over the lift
    # of products bought independently in orders of these sizes (baskets.core.copurchase: lift_bound / chance_lift).
    # Above 1: more often than chance; a product's complements are those, the surest first.
    above_chance = models.FloatField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(product_a__lt=F("product_b")), name="copurchase_ordered_pair"),
        ]

    def __str__(self):
        return f"{self.product_a_id} + {self.product_b_id}: {self.orders} orders, lift {self.lift:.2f}"


class ClusterCoPurchase(models.Model):
    """Clusters of a run bought together: for a cluster (`prefix`, a semantic-ID prefix of `level` codewords),
    another cluster of the same level (`other`) whose products share far more orders with its products than
    chance. Per cluster its CLUSTER_PARTNERS most surely above chance (by the lift's lower confidence bound,
    `baskets.core.copurchase.lift_bound`), stored from both sides, with `rank` 1 the first.
    Rewritten per run by `baskets.services.compute_cluster_copurchase`.

    A cluster is in an order when any of its products is: orders = orders holding both clusters,
    lift = orders · N / (orders with the cluster · orders with the other), N = orders with a coded product."""

    run = models.ForeignKey("quantizer.QuantizerRun", on_delete=models.CASCADE, related_name="+")
    level = models.PositiveSmallIntegerField()
    prefix = models.CharField(max_length=100)
    other = models.CharField(max_length=100)
    rank = models.PositiveSmallIntegerField()
    orders = models.PositiveIntegerField()
    lift = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "prefix", "rank"], name="cluster_copurchase_rank")]

    def __str__(self):
        return f"run {self.run_id} {self.prefix} + {self.other}: {self.orders} orders, lift {self.lift:.2f}"


class NextItemModel(models.Model):
    """A trained "customers may add next" model (baskets.core.nextitem, TIGER-style over semantic IDs),
    recorded like a quantizer run: its config, per-epoch history, held-out metrics and weights. It reads the
    codes of one quantizer run (the active one of its flavor when trained); the newest succeeded model of
    the active run of a flavor is the one the product page and the API use."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    run = models.ForeignKey("quantizer.QuantizerRun", on_delete=models.CASCADE, related_name="next_item_models")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    message = models.CharField(max_length=500, blank=True, default="")
    config = models.JSONField(default=dict)  # NextItemConfig.to_dict()
    history = models.JSONField(default=list, blank=True)  # one dict per epoch: loss, seconds
    metrics = models.JSONField(default=dict, blank=True)  # held-out orders: recall / NDCG, warm and cold
    n_orders = models.IntegerField(default=0)  # training orders
    n_products = models.IntegerField(default=0)  # products the model can name (coded by the run)
    train_seconds = models.FloatField(null=True, blank=True)
    weights = models.BinaryField(null=True, blank=True)  # save_next_item's bytes; read only to recommend
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["run", "status", "-created_at"], name="next_item_model_by_run")]

    def __str__(self):
        return f"next-item model #{self.pk} on run #{self.run_id} ({self.status})"
