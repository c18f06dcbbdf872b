"""Reads of the baskets app: a product's complements (what is bought with it far more often than chance)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from baskets.models import BasketLine, CoPurchase
from catalog.models import Product
from quantizer.core.ids import code_string
from quantizer.models import SemanticId

PANEL_SIZE = 8  # complements on the product page


@dataclass(frozen=True)
class SharedPrefix:
    """The longest semantic-ID prefix two products share under one flavor's active run ("" = none)."""

    flavor: str
    prefix: str

    @property
    def levels(self) -> int:
        return len(self.prefix.split("_")) if self.prefix else 0


@dataclass(frozen=True)
class Complement:
    product: Product  # the partner, with its category
    orders: int  # orders holding both
    lift: float
    pmi: float
    other_department: bool  # its top-level category differs from the product's (both categorized)
    shared: tuple[SharedPrefix, ...]  # one per flavor with an active run coding both products

    @property
    def category_path(self) -> str:
        return self.product.category.path if self.product.category_id else ""


def has_baskets() -> bool:
    return BasketLine.objects.exists()


def _department(product: Product) -> str | None:
    return product.category.levels[0] if product.category_id else None


def _common_prefix(codes: list[int], other: list[int]) -> str:
    depth = 0
    for mine, theirs in zip(codes, other):
        if mine != theirs:
            break
        depth += 1
    return code_string(codes[:depth])


def complements(*, product: Product, k: int = PANEL_SIZE, min_support: int = 1) -> list[Complement]:
    """The `k` products bought with `product` far more often than chance: highest lift first (then more
    orders), among the stored pairs with a lift above 1 (an import stores those of MIN_PAIR_SUPPORT orders
    and up; `min_support` asks for more); each with its category, whether it sits in another department,
    and the semantic-ID prefix it shares with `product` under each flavor's active run."""
    pairs = list(
        CoPurchase.objects.filter(Q(product_a=product) | Q(product_b=product), orders__gte=min_support, lift__gt=1)
        .order_by("-lift", "-orders", "product_a", "product_b")[:k]
    )
    partner_ids = [p.product_b_id if p.product_a_id == product.pk else p.product_a_id for p in pairs]
    partners = Product.objects.select_related("category").in_bulk(partner_ids)
    codes: dict[tuple[int, str], list[int]] = {
        (product_id, flavor): list(run_codes)
        for product_id, flavor, run_codes in SemanticId.objects.filter(
            run__is_active=True, product_id__in=[product.pk, *partner_ids]
        ).values_list("product_id", "run__flavor", "codes")
    }
    flavors = sorted(flavor for product_id, flavor in codes if product_id == product.pk)
    department = _department(product)
    out = []
    for pair, partner_id in zip(pairs, partner_ids):
        partner = partners.get(partner_id)
        if partner is None:  # deleted outside Django since the pairs were computed
            continue
        theirs = _department(partner)
        out.append(Complement(
            product=partner, orders=pair.orders, lift=pair.lift, pmi=pair.pmi,
            other_department=bool(department and theirs and department != theirs),
            shared=tuple(
                SharedPrefix(flavor, _common_prefix(codes[product.pk, flavor], codes[partner_id, flavor]))
                for flavor in flavors if (partner_id, flavor) in codes
            ),
        ))
    return out
