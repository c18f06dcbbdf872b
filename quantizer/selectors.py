"""Reads of semantic IDs: by product, by prefix, substitutes and related products."""

from __future__ import annotations

from django.db.models import Case, Count, Q, QuerySet, When
from django.db.models.expressions import RawSQL

from quantizer.core.ids import code_string
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


def substitute_depth(semantic_id: SemanticId) -> int:
    """Levels a substitute shares: every level but the last where the run spreads its last level
    (there the last level only tells products apart), else every level."""
    levels = len(semantic_id.codes)
    spread = bool((semantic_id.run.config or {}).get("spread_last_level"))
    return levels - 1 if spread and levels > 1 else levels


def _prefix(codes, depth: int) -> str:
    return code_string(codes[:depth]) + "_"


def substitutes(*, semantic_id: SemanticId, limit: int = 20) -> list[SemanticId]:
    """Products in the same deepest cluster: the same code but for the spread last level (see
    `substitute_depth`); those with the very same code (identical texts) first."""
    depth = substitute_depth(semantic_id)
    same = SemanticId.objects.filter(run_id=semantic_id.run_id)
    same = same.filter(code=semantic_id.code) if depth == len(semantic_id.codes) else same.filter(
        code__startswith=_prefix(semantic_id.codes, depth))
    return list(
        same.exclude(pk=semantic_id.pk)
        .annotate(identical=Case(When(code=semantic_id.code, then=0), default=1))
        .order_by("identical", "code", "token")
        .select_related("product__category")[:limit]
    )


def related(*, semantic_id: SemanticId, limit: int = 20) -> list[tuple[SemanticId, int]]:
    """Products sharing the longest prefix shorter than the substitutes' (then shorter ones), with the
    depth shared."""
    out, seen = [], {semantic_id.pk}
    codes = semantic_id.codes
    for depth in range(substitute_depth(semantic_id) - 1, 0, -1):
        rows = (
            SemanticId.objects.filter(run_id=semantic_id.run_id, code__startswith=_prefix(codes, depth))
            .exclude(pk__in=seen)
            .exclude(code__startswith=_prefix(codes, depth + 1))
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
