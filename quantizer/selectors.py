"""Reads of semantic IDs: by product, by prefix, substitutes and related products."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from django.db.models.expressions import RawSQL

from quantizer.models import QuantizerRun, SemanticId


def normalize_prefix(prefix: str) -> str:
    parts = [p for p in prefix.strip().strip("_").split("_") if p != ""]
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(f"bad prefix {prefix!r}: expected numbers joined by '_', e.g. 6_19")
    return "_".join(str(int(p)) for p in parts)


def products_by_prefix(*, run: QuantizerRun, prefix: str) -> QuerySet[SemanticId]:
    prefix = normalize_prefix(prefix)
    return (
        SemanticId.objects.filter(run=run)
        .filter(Q(code__startswith=prefix + "_") | Q(code=prefix))
        .select_related("product__category")
        .order_by("code", "token")
    )


def substitutes(*, semantic_id: SemanticId, limit: int = 20) -> list[SemanticId]:
    """Products with the same full code (they differ only by the disambiguation token)."""
    return list(
        SemanticId.objects.filter(run_id=semantic_id.run_id, code=semantic_id.code)
        .exclude(pk=semantic_id.pk)
        .select_related("product__category")[:limit]
    )


def related(*, semantic_id: SemanticId, limit: int = 20) -> list[tuple[SemanticId, int]]:
    """Products sharing the longest shorter prefix (levels L-1, then L-2, ...), with the depth shared."""
    out, seen = [], {semantic_id.pk}
    codes = semantic_id.codes
    for depth in range(len(codes) - 1, 0, -1):
        prefix = "_".join(str(c) for c in codes[:depth]) + "_"
        rows = (
            SemanticId.objects.filter(run_id=semantic_id.run_id, code__startswith=prefix)
            .exclude(pk__in=seen)
            .select_related("product__category")[: limit - len(out)]
        )
        for row in rows:
            seen.add(row.pk)
            out.append((row, depth))
        if len(out) >= limit:
            break
    return out


def prefix_children(*, run: QuantizerRun, prefix: str = "") -> list[dict]:
    """Product counts of the next-level clusters under `prefix` (of the whole run when empty)."""
    queryset = SemanticId.objects.filter(run=run)
    depth = 0
    if prefix:
        prefix = normalize_prefix(prefix)
        depth = len(prefix.split("_"))
        queryset = queryset.filter(code__startswith=prefix + "_")
    rows = queryset.annotate(child=RawSQL("codes[%s]", (depth + 1,))).values("child").annotate(n=Count("id")).order_by("-n")
    return [{"code": r["child"], "n": r["n"]} for r in rows if r["child"] is not None]
