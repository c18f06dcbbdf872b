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
