"""The product page's "Goes well with" panel. catalog's product page includes
templates/baskets/_goes_well_with.html, which asks this tag for its rows: catalog imports nothing of baskets."""

from django import template

from baskets.selectors import PANEL_SIZE, complements, has_baskets
from baskets.services import MIN_PAIR_SUPPORT

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
