"""Reads for the cluster tree: each child prefix's size, label make-up, purity and a name made of
its most characteristic words. Counts come from SQL aggregation; names from a sample of names."""

from __future__ import annotations

import math
import re
from collections import Counter

from django.core.cache import cache
from django.db.models import Case, Count, F, Q, Value, When, Window
from django.db.models.expressions import RawSQL
from django.db.models.functions import RowNumber

from quantizer.models import QuantizerRun, SemanticId
from quantizer.selectors import normalize_prefix, prefix_children

NAME_SAMPLE_PER_CHILD = 60
CATALOG_SAMPLE = 4000
TOKEN = re.compile(r"[a-z][a-z'-]{2,}")
STOPWORDS = frozenset(
    "and the with for from pack count free made our per each new classic original fresh value".split()
)


def tokens(name: str) -> set[str]:
    return {t.strip("'-") for t in TOKEN.findall(name.lower())} - STOPWORDS


def prefix_levels(prefix: str) -> list[dict]:
    """Breadcrumbs: [{"code": "6", "prefix": "6"}, {"code": "19", "prefix": "6_19"}, ...]."""
    if not prefix:
        return []
    parts = normalize_prefix(prefix).split("_")
    return [{"code": p, "prefix": "_".join(parts[: i + 1])} for i, p in enumerate(parts)]


def _under(run: QuantizerRun, prefix: str):
    queryset = SemanticId.objects.filter(run=run)
    if prefix:
        queryset = queryset.filter(Q(code__startswith=prefix + "_") | Q(code=prefix))
    return queryset


def _catalog_frequencies(run: QuantizerRun) -> tuple[Counter, int]:
    """Document frequency of name tokens over a sample of the run's products (cached per run)."""
    key = f"semid:cluster-df:{run.pk}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    names = SemanticId.objects.filter(run=run).order_by("id").values_list("product__name", flat=True)[:CATALOG_SAMPLE]
    frequencies: Counter = Counter()
    total = 0
    for name in names:
        frequencies.update(tokens(name))
        total += 1
    cache.set(key, (frequencies, total), 600)
    return frequencies, total


def characteristic_words(names: list[str], frequencies: Counter, total: int, k: int = 3) -> list[str]:
    """Words frequent in these names and rarer in the catalog (smoothed log-odds times frequency)."""
    if not names:
        return []
    local = Counter()
    for name in names:
        local.update(tokens(name))
    scored = []
    for token, n in local.items():
        share = n / len(names)
        if n < 2 and len(names) > 3:
            continue
        background = (frequencies.get(token, 0) + 1) / (total + 2)
        scored.append((share * math.log((share + 0.01) / background), token))
    scored.sort(reverse=True)
    return [token for _, token in scored[:k]]


def cluster_children(*, run: QuantizerRun, prefix: str = "") -> list[dict]:
    """The next-level clusters under `prefix`: code, prefix, size, share, purity, top categories, words."""
    prefix = normalize_prefix(prefix) if prefix else ""
    depth = len(prefix.split("_")) if prefix else 0
    levels = len(run.config.get("codebook_sizes") or []) or 4
    if depth >= levels:
        return []
    children = prefix_children(run=run, prefix=prefix)
    if not children:
        return []
    child = RawSQL("codes[%s]", (depth + 1,))
    # Purity is judged at the taxonomy depth of the child's level: departments at level 1, aisles at 2, ...
    make_up: dict[int, Counter] = {}
    rows = _under(run, prefix).annotate(child=child).values("child", "product__category__path").annotate(n=Count("id"))
    for row in rows:
        path = row["product__category__path"]
        path = " > ".join(path.split(" > ")[: depth + 1]) if path else "(uncategorized)"
        make_up.setdefault(row["child"], Counter())[path] += row["n"]
    sample = (
        _under(run, prefix).annotate(
            child=child,
            rank=Window(RowNumber(), partition_by=[child], order_by=F("id").asc()),
        ).filter(rank__lte=NAME_SAMPLE_PER_CHILD).values_list("child", "product__name")
    )
    names: dict[int, list[str]] = {}
    for code, name in sample:
        names.setdefault(code, []).append(name)
    frequencies, total = _catalog_frequencies(run)
    size = sum(c["n"] for c in children) or 1
    out = []
    for c in children:
        categories = make_up.get(c["code"], Counter()).most_common()
        top = categories[0][1] if categories else 0
        out.append({
            "code": c["code"],
            "prefix": f"{prefix}_{c['code']}" if prefix else str(c["code"]),
            "n": c["n"],
            "share": c["n"] / size,
            "purity": top / c["n"] if c["n"] else 0.0,
            "categories": [{"path": p, "name": p.rsplit(" > ", 1)[-1], "n": n} for p, n in categories[:3]],
            "words": characteristic_words(names.get(c["code"], []), frequencies, total),
        })
    return out


def purity_colour(purity: float) -> str:
    """Red (mixed labels) through yellow to green (one label), as an HSL colour."""
    return f"hsl({round(120 * max(0.0, min(purity, 1.0)))} 62% 76%)"


def _basis(share: float, floor: float) -> float:
    """A tile's flex-basis in percent of its row: big ones take a row, small ones stay readable."""
    return round(min(100.0, max(floor, 300 * share)), 1)


def treemap_groups(children: list[dict], *, by_department: bool) -> list[dict]:
    """The treemap's tiles (colour = purity, size = products) in groups. `by_department` (level 1): one group
    per department, holding the clusters most of whose products are filed there, biggest group first, so
    the catalog reads at a glance; else one group without a heading."""
    total = sum(c["n"] for c in children) or 1
    groups: dict[str, dict] = {}
    for child in children:
        department = (child["categories"][0]["path"] if child["categories"] else "(uncategorized)") if by_department else ""
        group = groups.setdefault(department, {"department": department, "n": 0, "children": []})
        group["n"] += child["n"]
        group["children"].append(child)
    out = sorted(groups.values(), key=lambda g: (-g["n"], g["department"]))
    for group in out:
        group["share"] = group["n"] / total
        group["basis"] = _basis(group["share"], 22.0)
        for child in group["children"]:
            child["colour"] = purity_colour(child["purity"])
            child["basis"] = _basis(child["n"] / group["n"], 14.0 if not by_department else 30.0)
    return out


def product_matches(*, run: QuantizerRun, query: str):
    """The run's semantic IDs of the products matching `query`: its external id exactly (first), else a
    name or brand containing it; by name."""
    query = query.strip()
    if not query:
        return SemanticId.objects.none()
    exact = Case(When(product__external_id__iexact=query, then=Value(0)), default=Value(1))
    return (
        SemanticId.objects.filter(run=run)
        .filter(Q(product__external_id__iexact=query) | Q(product__name__icontains=query)
                | Q(product__brand__icontains=query))
        .select_related("product__category")
        .order_by(exact, "product__name", "product_id")
    )
