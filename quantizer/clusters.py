"""The cluster tree: each cluster's size, label make-up, purity and a name made of its most characteristic
words, read from the run's cluster summaries (`ClusterSummary`, one row per prefix at every level), so a page
reads one level's children by index whatever the catalog's size.

Sizes and label make-up are kept current by PostgreSQL triggers (quantizer migration 0003) on every write of
semantic IDs, product categories and category paths, for the levels the session setting semid.summary_levels
allows (0007; unset: all); `rebuild_cluster_summaries` recomputes a run's from its semantic IDs, set-based,
from a level down. Words come from a sample of each cluster's names: written with the codes for the
clusters of more than `SMALL_CLUSTER` products (`fill_words`), on the first view of their parent for the
smaller ones (at a million products the deep levels hold about as many clusters as products, and naming them
all with the codes took longer than writing the codes) and for a cluster created since."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from django.core.cache import cache
from django.core.paginator import Page, Paginator
from django.db import connection, transaction
from django.db.models import Case, Max, Q, Value, When

from catalog.models import Category, Product
from config.database import close_threads
from quantizer.models import ClusterSummary, QuantizerRun, SemanticId
from quantizer.selectors import normalize_prefix

NAME_SAMPLE_PER_CHILD = 60
CATALOG_SAMPLE = 4000
# Clusters of more products are named when the codes are written; smaller ones on the first view of their parent
SMALL_CLUSTER = 16
WORDS_BATCH = 10000
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


def code_bounds(prefix: str, *, deepest: bool) -> tuple[str, str]:
    """The codes under `prefix` as a byte-order range [low, high] of the run's code index
    (`semid_run_code_prefix`, `~>=~` / `~<=~`): a whole code where `prefix` is of the deepest level, else
    ["6_19_", "6_19_~"] ('~' follows digits and '_'). Bounds, unlike a LIKE, use the index when they come from
    a joined column too."""
    return (prefix, prefix) if deepest else (prefix + "_", prefix + "_~")


def _names_by_prefix(sql: str, params: list, wanted: set[str] | None = None) -> dict[str, list[str]]:
    """{prefix: names} from a query of (prefix, name) rows, keeping the `wanted` prefixes (None: every one)."""
    names: dict[str, list[str]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for prefix, name in cursor:
            if wanted is None or prefix in wanted:
                names.setdefault(prefix, []).append(name)
    return names


def _level_sample(run: QuantizerRun, level: int, wanted: set[str]) -> dict[str, list[str]]:
    """{prefix: the names of its first products by semantic-ID id} for the `wanted` level-`level` prefixes, in
    one pass over the run's products."""
    return _names_by_prefix(
        "SELECT prefix, name FROM (SELECT array_to_string(s.codes[1:%s], '_') AS prefix, p.name, "
        "row_number() OVER (PARTITION BY s.codes[1:%s] ORDER BY s.id) AS rank "
        "FROM quantizer_semanticid s JOIN catalog_product p ON p.id = s.product_id "
        "WHERE s.run_id = %s AND cardinality(s.codes) >= %s) AS sample WHERE rank <= %s",
        [level, level, run.pk, level, NAME_SAMPLE_PER_CHILD], wanted)


def _cluster_sample(run: QuantizerRun, prefixes: list[str], *, deepest: bool) -> dict[str, list[str]]:
    """{prefix: the names of its first products in code order}, each prefix read from the run's code index
    (`code_bounds`): a whole cluster for the small ones this is for."""
    bounds = [code_bounds(prefix, deepest=deepest) for prefix in prefixes]
    return _names_by_prefix(
        "SELECT w.prefix, p.name FROM unnest(%s::text[], %s::text[], %s::text[]) AS w(prefix, low, high) "
        "CROSS JOIN LATERAL (SELECT s.product_id FROM quantizer_semanticid s WHERE s.run_id = %s "
        "AND s.code ~>=~ w.low AND s.code ~<=~ w.high ORDER BY s.code USING ~<~, s.token LIMIT %s) AS s "
        "JOIN catalog_product p ON p.id = s.product_id",
        [prefixes, [low for low, _ in bounds], [high for _, high in bounds], run.pk, NAME_SAMPLE_PER_CHILD])


def fill_words(*, run: QuantizerRun, prefixes: list[str] | None = None, level: int | None = None,
               ) -> dict[str, list[str]]:
    """Name the run's clusters of `prefixes` that have no words yet (a level's children, on first view), or,
    without `prefixes`, those of more than `SMALL_CLUSTER` products (of `level`, or of every level). Returns
    {prefix: words}."""
    missing = ClusterSummary.objects.filter(run=run, words__isnull=True)
    if level is not None:
        missing = missing.filter(level=level)
    if prefixes is None:
        missing = missing.filter(size__gt=SMALL_CLUSTER)
    else:
        missing = missing.filter(prefix__in=prefixes)
    by_level: dict[int, dict[str, int]] = {}
    for pk, level, prefix in missing.values_list("pk", "level", "prefix").iterator(chunk_size=WORDS_BATCH):
        by_level.setdefault(level, {})[prefix] = pk
    if not by_level:
        return {}
    frequencies, total = _catalog_frequencies(run)
    deepest = None if prefixes is None else ClusterSummary.objects.filter(run=run).aggregate(Max("level"))["level__max"]
    named: dict[str, list[str]] = {}
    for level, ids in sorted(by_level.items()):
        if prefixes is None:
            names = _level_sample(run, level, set(ids))
        else:
            names = _cluster_sample(run, list(ids), deepest=level == deepest)
        words = {prefix: characteristic_words(names.get(prefix, []), frequencies, total) for prefix in ids}
        named.update(words)
        rows = [(ids[prefix], w) for prefix, w in words.items()]
        with connection.cursor() as cursor:
            for start in range(0, len(rows), WORDS_BATCH):
                batch = rows[start : start + WORDS_BATCH]
                cursor.execute(
                    "UPDATE quantizer_clustersummary AS s SET words = w.words::jsonb "
                    "FROM unnest(%s::bigint[], %s::text[]) AS w(id, words) WHERE s.id = w.id",
                    [[pk for pk, _ in batch], [json.dumps(w) for _, w in batch]])
    return named


# Held while a run's clusters are rebuilt: products' categories and categories' paths do not change meanwhile.
LOCK_CATEGORIES = f"LOCK TABLE {Product._meta.db_table}, {Category._meta.db_table} IN SHARE MODE"


def rebuild_cluster_summaries(*, run: QuantizerRun, first_level: int = 1) -> int:
    """Recompute the run's clusters of `first_level` and deeper from its semantic IDs (set-based, one statement
    per level) and name those of more than `SMALL_CLUSTER` products; returns the rows written. For codes written
    while the triggers kept fewer levels, or none (a bulk copy); the triggers keep them current after that.
    The levels are rebuilt side by side, each on a thread in its own transaction (in this one, one after the
    other, inside a transaction). Products and categories are locked against writes while a level is rebuilt: a
    decision that moves a product waits for the rebuild (its trigger's change would otherwise fall on rows the
    rebuild is replacing)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(LOCK_CATEGORIES)
        cursor.execute("SELECT max(cardinality(codes)) FROM quantizer_semanticid WHERE run_id = %s", [run.pk])
        deepest = cursor.fetchone()[0] or 0
        cursor.execute("DELETE FROM quantizer_clustersummary WHERE run_id = %s AND level >= %s",
                       [run.pk, max(first_level, deepest + 1)])  # levels the codes no longer have
    levels = range(first_level, deepest + 1)
    if connection.in_atomic_block:
        return sum(_rebuild_level(run, level) for level in levels)
    pools = [ThreadPoolExecutor(1, thread_name_prefix=f"summaries-{level}") for level in levels]
    try:
        rebuilt = [pool.submit(_rebuild_level, run, level) for pool, level in zip(pools, levels)]
    finally:
        close_threads(*pools)  # waits for every level
    return sum(written.result() for written in rebuilt)


def _rebuild_level(run: QuantizerRun, level: int) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(LOCK_CATEGORIES)
        cursor.execute("SELECT quantizer_rebuild_cluster_level(%s, %s)", [run.pk, level])
        written = cursor.fetchone()[0]
    fill_words(run=run, level=level)
    return written


def cluster_children(*, run: QuantizerRun, prefix: str = "") -> list[dict]:
    """The next-level clusters under `prefix`: code, prefix, size, share, purity, top categories, words.
    Purity is judged at the taxonomy depth of the child's level: departments at level 1, aisles at 2, ..."""
    prefix = normalize_prefix(prefix) if prefix else ""
    depth = len(prefix.split("_")) if prefix else 0
    children = list(ClusterSummary.objects.filter(run=run, level=depth + 1, parent=prefix).order_by("-size", "code"))
    unnamed = [c.prefix for c in children if c.words is None]
    named = fill_words(run=run, prefixes=unnamed) if unnamed else {}
    size = sum(c.size for c in children) or 1
    out = []
    for c in children:
        categories = sorted(c.labels.items(), key=lambda item: (-item[1], item[0]))
        top = categories[0][1] if categories else 0
        out.append({
            "code": c.code,
            "prefix": c.prefix,
            "n": c.size,
            "share": c.size / size,
            "purity": top / c.size if c.size else 0.0,
            "categories": [{"path": p, "name": p.rsplit(" > ", 1)[-1], "n": n} for p, n in categories[:3]],
            "words": c.words if c.words is not None else named.get(c.prefix, []),
        })
    return out


class ClusterProducts:
    """The products under a prefix, by code then token, as a sequence a Paginator takes: a page is read from
    the (run, code varchar_pattern_ops) index in that index's order (`USING ~<~`, byte order: code order for
    codes of digits and underscores) instead of being filtered out of the whole run and sorted; its length is
    the cluster's size from the summaries, not a count."""

    def __init__(self, *, run: QuantizerRun, prefix: str, size: int, deepest: bool):
        self.run, self.size = run, size
        self.bounds = code_bounds(prefix, deepest=deepest)

    def __len__(self) -> int:
        return self.size

    def count(self) -> int:
        return self.size

    def __getitem__(self, index: slice) -> list[SemanticId]:
        start, stop, _ = index.indices(self.size)
        low, high = self.bounds
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM quantizer_semanticid WHERE run_id = %s AND code ~>=~ %s AND code ~<=~ %s "
                           "ORDER BY code USING ~<~, token LIMIT %s OFFSET %s",
                           [self.run.pk, low, high, stop - start, start])
            ids = [pk for (pk,) in cursor]
        rows = SemanticId.objects.select_related("product__category").in_bulk(ids)
        return [rows[pk] for pk in ids]


def cluster_products_page(*, run: QuantizerRun, prefix: str, children: list[dict], number, per_page: int = 25) -> Page:
    """One page of the products under `prefix`, given its `children` (`cluster_children`): none means the prefix
    is a whole code (the deepest level); else their sizes add up to the prefix's."""
    prefix = normalize_prefix(prefix)
    if children:
        size, deepest = sum(c["n"] for c in children), False
    else:
        size, deepest = SemanticId.objects.filter(run=run, code=prefix).count(), True
    return Paginator(ClusterProducts(run=run, prefix=prefix, size=size, deepest=deepest), per_page).get_page(number)


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
            # a tile's text, made here: a level's 256 tiles rendered from template loops and filters took most of
            # the level-3 page's time at a million products (docs/benchmarks.md)
            child["percent"] = round(child["purity"] * 100)
            child["words_text"] = " · ".join(child["words"]) or "—"
            child["top_two"] = ", ".join(f"{cat['name']} ({cat['n']})" for cat in child["categories"][:2])
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
