"""The baskets panels of other apps' pages: the product page's "Goes well with" and "Customers may add next"
(templates/catalog/product.html includes templates/baskets/_goes_well_with.html and _may_add_next.html) and
the cluster tree's "Bought with" (templates/quantizer/clusters.html includes
templates/baskets/_bought_with_clusters.html). Each template asks a tag here for its rows: catalog and
quantizer import nothing of baskets."""

from django import template

from baskets.selectors import PANEL_SIZE, bought_with_clusters, cluster_copurchase_computed, complements, has_baskets
from baskets.services import CLUSTER_LEVELS, MIN_PAIR_SUPPORT

register = template.Library()


@register.simple_tag
def goes_well_with(product) -> dict | None:
    """The panel's rows and its minimum support; None (no panel) while no basket was imported."""
    if product is None or not has_baskets():
        return None
    return {"complements": complements(product=product, k=PANEL_SIZE), "min_support": MIN_PAIR_SUPPORT}


@register.simple_tag
def may_add_next(product) -> dict | None:
    """The "Customers may add next" panel: the current next-item model's products after this one, with their
    semantic IDs; None (no panel) while no model is trained on an active run."""
    from baskets.selectors import NEXT_PANEL_SIZE, current_next_item_model
    from baskets.selectors import may_add_next as decode

    if product is None:
        return None
    record = current_next_item_model()
    if record is None:
        return None
    return {"products": decode(product=product, k=NEXT_PANEL_SIZE, flavor=record.run.flavor), "model": record}


@register.simple_tag
def bought_with(run, prefix: str) -> dict | None:
    """The cluster tree's "Bought with" panel for the cluster `prefix` of `run`; None (no panel) at the root,
    below the levels that have it (baskets.services.CLUSTER_LEVELS), or while no basket was imported."""
    if run is None or not prefix or len(prefix.split("_")) > CLUSTER_LEVELS or not has_baskets():
        return None
    return {"clusters": bought_with_clusters(run=run, prefix=prefix), "computed": cluster_copurchase_computed(run),
            "min_support": MIN_PAIR_SUPPORT}
