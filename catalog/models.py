import pghistory
from django.conf import settings
from django.db import models
from pgvector.django import HnswIndex, VectorField
from tree_queries.models import TreeNode

from catalog.rows import PATH_SEPARATOR

EMBEDDING_DIM = settings.SEMID_EMBEDDING_DIM  # the pgvector column's size, read in settings


class Flavor(models.TextChoices):
    PRECISION = "precision", "Precision"
    DISCOVERY = "discovery", "Discovery"


def check_flavors(flavors) -> list[str]:
    """`flavors` as a list, or a ValueError naming the first one that is not a flavor."""
    flavors = list(flavors)
    unknown = [f for f in flavors if f not in Flavor.values]
    if unknown:
        raise ValueError(f"unknown flavor {unknown[0]!r}; use one of {', '.join(Flavor.values)}")
    return flavors


class Category(TreeNode):
    """A node of the hand-made taxonomy. `path` is the full materialized path."""

    name = models.CharField(max_length=200)
    path = models.CharField(max_length=1000, unique=True)
    depth = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["path"]
        verbose_name_plural = "categories"
        constraints = [
            models.UniqueConstraint(fields=["parent", "name"], name="category_unique_name_per_parent"),
        ]

    def __str__(self):
        return self.path

    @property
    def levels(self) -> list[str]:
        return self.path.split(PATH_SEPARATOR)


# "created" rows by a statement-level trigger: one INSERT per statement from its transition table, so an import
# writes its 49,688 rows set-based (docs/benchmarks.md, "Import"). Category moves by a row-level trigger whose
# WHEN clause runs it only for the rows that move (a statement-level one would record a context for every update).
@pghistory.track(
    pghistory.InsertEvent("created", level=pghistory.Statement),
    pghistory.UpdateEvent("category_changed", condition=pghistory.AnyChange("category")),
    fields=["category"],
    model_name="ProductCategoryEvent",
    # The copied category as pghistory copies a foreign key, less its index: a product's history is read by
    # pgh_obj_id, and the index cost every imported product's "created" row (docs/benchmarks.md, "Import").
    attrs={"category": models.ForeignKey(Category, null=True, blank=True, db_index=False, db_constraint=False,
                                         on_delete=models.DO_NOTHING, related_name="+", related_query_name="+")},
)
class Product(models.Model):
    external_id = models.CharField(max_length=200)
    name = models.CharField(max_length=500)
    brand = models.CharField(max_length=200, blank=True, default="")
    description = models.TextField(blank=True, default="")
    size = models.CharField(max_length=100, blank=True, default="")
    attributes = models.JSONField(default=dict, blank=True)
    # The standardized attribute record behind the discovery text (catalog.text).
    extracted = models.JSONField(default=dict, blank=True)
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.PROTECT, related_name="products"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        # A constraint rather than unique=True, which adds a varchar_pattern_ops index for LIKE 'x%' that no
        # query uses; nor does any use a plain index on brand (searches compare UPPER(brand)). Each index costs
        # every imported row (docs/benchmarks.md, "Import").
        constraints = [models.UniqueConstraint(fields=["external_id"], name="product_unique_external_id")]

    def __str__(self):
        return f"{self.name} ({self.external_id})"

    def as_record(self) -> dict:
        """The plain record the product-text builders read (never the category)."""
        attributes = dict(self.attributes)
        if self.size:
            attributes.setdefault("size", self.size)
        return {
            "name": self.name,
            "brand": self.brand,
            "description": self.description,
            "attributes": attributes,
        }


class ProductEmbedding(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="embeddings")
    flavor = models.CharField(max_length=20, choices=Flavor.choices)
    model_name = models.CharField(max_length=300)
    text_hash = models.CharField(max_length=64)
    embedding = VectorField(dimensions=EMBEDDING_DIM)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["product", "flavor"], name="embedding_unique_product_flavor"),
        ]
        indexes = [
            # One partial index per flavor, so a kNN query for a flavor walks only its vectors.
            *(
                HnswIndex(
                    name=f"embedding_hnsw_{flavor}",
                    fields=["embedding"],
                    m=16,
                    ef_construction=64,
                    opclasses=["vector_cosine_ops"],
                    condition=models.Q(flavor=flavor),
                )
                for flavor in Flavor.values
            ),
            models.Index(fields=["flavor", "product"], name="embedding_flavor_product"),
            # Products with the same text (same embedding) share their semantic ID on assignment.
            models.Index(fields=["flavor", "text_hash"], name="embedding_flavor_text"),
        ]
