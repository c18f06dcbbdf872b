"""Reads of the baskets app: a product's complements (what is bought with it far more often than chance)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from django.db.models import Q

from baskets.models import BasketLine, ClusterCoPurchase, CoPurchase, NextItemModel
from catalog.models import Product
from quantizer.core.ids import code_string
from quantizer.models import ClusterSummary, SemanticId

PANEL_SIZE = 8  # complements on the product page


@dataclass(frozen=True)
class BoughtWithCluster:
    """Another cluster of the same level whose products are bought with this cluster's far more often than
    chance (baskets.models.ClusterCoPurchase), with what the cluster tree shows of it."""

    prefix: str
    orders: int  # orders holding a product of each
    lift: float
    size: int  # its products
    words: tuple[str, ...]  # its most characteristic name words
    label: str  # the category most of its products are filed in, cut to its level ("" when none)


def bought_with_clusters(*, run, prefix: str) -> list[BoughtWithCluster]:
    """The clusters bought with the cluster `prefix` of `run`, the most surely above chance first (at most
    CLUSTER_PARTNERS)."""
    rows = list(ClusterCoPurchase.objects.filter(run=run, prefix=prefix).order_by("rank"))
    summaries = {s.prefix: s for s in ClusterSummary.objects.filter(run=run, prefix__in=[r.other for r in rows])}
    out = []
    for row in rows:
        summary = summaries.get(row.other)
        labels = summary.labels if summary else {}
        out.append(BoughtWithCluster(
            prefix=row.other, orders=row.orders, lift=row.lift, size=summary.size if summary else 0,
            words=tuple((summary.words or [])[:4]) if summary else (),
            label=max(labels, key=lambda k: (labels[k], k)) if labels else "",
        ))
    return out


def cluster_copurchase_computed(run) -> bool:
    return ClusterCoPurchase.objects.filter(run=run).exists()


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
    above_chance: float  # how many times chance (orders' sizes kept) at least, at 95%: the list's order
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
    """The `k` products bought with `product` far more often than chance: the stored pairs surely above chance
    with the orders' sizes kept (`CoPurchase.above_chance` over 1, lift over 1; an import stores the pairs of
    MIN_PAIR_SUPPORT orders and up, `min_support` asks for more), the surest first (a pair of many orders before
    one of six with a little more lift; then the lift, then more orders); each with its category, whether it
    sits in another department, and the semantic-ID prefix it shares with `product` under each flavor's active
    run."""
    pairs = list(
        CoPurchase.objects.filter(Q(product_a=product) | Q(product_b=product), orders__gte=min_support, lift__gt=1,
                                  above_chance__gt=1)
        .order_by("-above_chance", "-lift", "-orders", "product_a", "product_b")[:k]
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
            product=partner, orders=pair.orders, lift=pair.lift, pmi=pair.pmi, above_chance=pair.above_chance,
            other_department=bool(department and theirs and department != theirs),
            shared=tuple(
                SharedPrefix(flavor, _common_prefix(codes[product.pk, flavor], codes[partner_id, flavor]))
                for flavor in flavors if (partner_id, flavor) in codes
            ),
        ))
    return out


# --------------------------------------------------------------------------- "customers may add next"

NEXT_PANEL_SIZE = 8


@dataclass(frozen=True)
class NextProduct:
    product: Product
    code: str  # its semantic ID under the model's run (SemanticId.code, "6_19_32_63")
    rank: int  # 1 = the model's first choice


def current_next_item_model(flavor: str | None = None):
    """The newest succeeded next-item model of an active run (of ``flavor`` when given), without its
    weights; None when there is none."""
    models = NextItemModel.objects.filter(status=NextItemModel.Status.SUCCEEDED, run__is_active=True,
                                          weights__isnull=False).select_related("run").defer("weights")
    if flavor:
        models = models.filter(run__flavor=flavor)
    return models.order_by("-created_at", "-pk").first()


def next_item_models(limit: int = 6) -> list[dict]:
    """The newest next-item models (without their weights), each with whether it is the one in use
    (`current_next_item_model`) and its held-out figures: Recall@10 and NDCG@10 over all held-out targets,
    Recall@10 over those never bought in training and how many there were."""
    in_use = current_next_item_model()
    rows = []
    for model in NextItemModel.objects.select_related("run").defer("weights")[:limit]:
        m = model.metrics or {}
        rows.append({"model": model, "in_use": in_use is not None and model.pk == in_use.pk,
                     "recall": m.get("all_recall@10"), "ndcg": m.get("all_ndcg@10"),
                     "cold_recall": m.get("cold_recall@10"), "cold_cases": m.get("cold_cases")})
    return rows


_loaded: dict = {}  # one model a process: {"key": (model pk, products coded), "model", "product_ids", "codes"}
_loading = threading.Lock()


def _load(record):
    """The model of ``record`` with the trie of its run's codes now, loaded once per process (again when
    another model is current or the run codes another number of products)."""
    from baskets.core.nextitem import load_next_item
    coded = SemanticId.objects.filter(run_id=record.run_id)
    key = (record.pk, coded.count())
    with _loading:
        if _loaded.get("key") != key:
            _loaded.clear()
            rows = list(coded.order_by("product_id").values_list("product_id", "codes", "code"))
            product_ids = np.array([pk for pk, _, _ in rows], dtype=np.int64)
            codes = np.array([c for _, c, _ in rows], dtype=np.int64)
            blob = bytes(NextItemModel.objects.values_list("weights", flat=True).get(pk=record.pk))
            _loaded.update(key=key, model=load_next_item(blob, codes), product_ids=product_ids,
                           names=[name for _, _, name in rows])
        return _loaded["model"], _loaded["product_ids"], _loaded["names"]


def may_add_next(*, product: Product, k: int = NEXT_PANEL_SIZE, flavor: str | None = None) -> list[NextProduct]:
    """The products the current next-item model decodes after a basket holding only ``product``, best
    first, each with its semantic ID; [] when there is no model or the run does not code the product."""
    from baskets.core.nextitem import recommend

    record = current_next_item_model(flavor)
    if record is None:
        return []
    model, product_ids, names = _load(record)
    row = np.searchsorted(product_ids, product.pk)
    if row >= len(product_ids) or product_ids[row] != product.pk:
        return []
    recs = [int(r) for r in recommend(model, [np.array([row])], k)[0] if r >= 0]
    products = Product.objects.select_related("category").in_bulk([int(product_ids[r]) for r in recs])
    return [NextProduct(products[int(product_ids[r])], names[r], rank)
            for rank, r in enumerate(recs, start=1) if int(product_ids[r]) in products]
