from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from catalog.models import Flavor, Product


class QuantizerRun(models.Model):
    class Kind(models.TextChoices):
        RQVAE = "rqvae", "RQ-VAE"
        RESIDUAL_KMEANS = "rkmeans", "Residual k-means"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    flavor = models.CharField(max_length=20, choices=Flavor.choices)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.RQVAE)
    embedding_model = models.CharField(max_length=300)
    # What the run reads beside the text embedding (quantizer.inputs): "" = the text alone, "copurchase" = each
    # product's place among the imported orders too.
    extra_input = models.CharField(max_length=40, blank=True, default="")
    # The extra half's weight beside the text's (quantizer.core.inputs.side_by_side), the input's registered one
    # when the run was created; 1 = the two halves alike.
    extra_input_weight = models.FloatField(default=1.0)
    config = models.JSONField(default=dict)
    seed = models.IntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True, default="")
    history = models.JSONField(default=list, blank=True)  # per-epoch loss terms
    metrics = models.JSONField(default=dict, blank=True)
    churn = models.JSONField(default=dict, blank=True)
    warm_start_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)
    is_active = models.BooleanField(default=False)
    n_products = models.IntegerField(default=0)
    train_seconds = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["flavor"], condition=Q(is_active=True), name="one_active_run_per_flavor"
            ),
        ]

    def __str__(self):
        return f"run #{self.pk} {self.flavor} {self.kind} ({self.status})"

    @property
    def weights(self) -> bytes | None:
        """The trained model (`save_model`'s bytes), or None (residual k-means, not trained yet). Kept in a
        table of its own and read only here: a run row travels in every flag and semantic-ID list (a
        join per row), and 1.5 MiB of weights in each made a list of 50 flags read 75 MiB."""
        try:
            return bytes(self.stored_weights.data)
        except RunWeights.DoesNotExist:
            return None

    @property
    def has_weights(self) -> bool:
        return RunWeights.objects.filter(run_id=self.pk).exists()

    def store_weights(self, data: bytes) -> None:
        RunWeights.objects.update_or_create(run=self, defaults={"data": data})
        self._state.fields_cache.pop("stored_weights", None)


class RunWeights(models.Model):
    run = models.OneToOneField(QuantizerRun, on_delete=models.CASCADE, primary_key=True, related_name="stored_weights")
    data = models.BinaryField()


class RunInputRow(models.Model):
    """A product's extra-input row (`quantizer.inputs`) as its run trained on it, float32 bytes; only non-zero
    rows are kept. A product coded again later (its text changed) reads its row from here: the input computed
    afresh would sit in another basis (a new SVD of new orders) that the run's model never saw."""

    pk = models.CompositePrimaryKey("run", "product")
    run = models.ForeignKey(QuantizerRun, on_delete=models.CASCADE, related_name="input_rows")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    row = models.BinaryField()


class SemanticId(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="semantic_ids")
    run = models.ForeignKey(QuantizerRun, on_delete=models.CASCADE, related_name="semantic_ids")
    codes = ArrayField(models.IntegerField())  # (L,) code per level
    code = models.CharField(max_length=100)  # "6_19_32_63"
    token = models.PositiveIntegerField(default=0)  # append-only disambiguation token
    reconstruction_error = models.FloatField(null=True, blank=True)
    gaps = ArrayField(models.FloatField(), default=list, blank=True)  # nearest vs 2nd-nearest

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "product"], name="semid_unique_product_per_run"),
            models.UniqueConstraint(fields=["run", "code", "token"], name="semid_unique_full_id_per_run"),
        ]
        indexes = [
            models.Index(
                fields=["run", "code"], name="semid_run_code_prefix", opclasses=["int8_ops", "varchar_pattern_ops"]
            ),
        ]

    @property
    def full_id(self) -> str:
        return f"{self.code}_{self.token}" if self.token else self.code

    def __str__(self):
        return self.full_id


class ClusterSummary(models.Model):
    """One cluster of a run: the products whose codes start with `prefix`, at every level. What the cluster
    tree shows, so that a page reads a level's children by index instead of grouping the semantic IDs.

    Sizes and label make-up are kept by PostgreSQL triggers (migration 0003) on every write that can
    change them, whatever path it takes: semantic IDs written, moved or deleted (training, cold start,
    the admin), a product's category changed (a decision, an undo, an import, the admin, the API) and a
    category's path renamed. `words` are written with the codes for clusters of more than
    `quantizer.clusters.SMALL_CLUSTER` products (`fill_words`), on the first view of their parent for the
    others; they do not follow decisions."""

    run = models.ForeignKey(QuantizerRun, on_delete=models.CASCADE, related_name="cluster_summaries")
    level = models.PositiveSmallIntegerField()  # 1 = the first code
    parent = models.CharField(max_length=100, blank=True)  # the prefix one level up, "" at level 1
    prefix = models.CharField(max_length=100)  # "6_19"
    code = models.IntegerField()  # the prefix's last code
    size = models.IntegerField()  # products
    # {category path cut to `level` levels (departments at 1, aisles at 2, ...) or "(uncategorized)": products}
    labels = models.JSONField(default=dict)
    words = models.JSONField(null=True, blank=True)  # most characteristic name words; None: not computed yet

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "prefix"], name="cluster_summary_unique_prefix"),
        ]
        indexes = [
            models.Index(fields=["run", "level", "parent"], name="cluster_summary_children"),
        ]

    def __str__(self):
        return f"{self.prefix} ({self.size}) in run #{self.run_id}"
