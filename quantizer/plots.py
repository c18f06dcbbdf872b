"""Geometry for the runs page's server-rendered SVG plots (no Django, no JS)."""

from __future__ import annotations

# The runs page's metrics (quantizer.core.metrics.intrinsic_metrics): key, what a merchandiser reads, what it means.
METRICS = (
    ("spearman", "Similar products share longer codes",
     "Spearman correlation between two products' text similarity and how many leading codewords their semantic IDs "
     "share, over random and nearest-neighbour pairs (higher is better)"),
    ("high_sim_same_l1", "Near-identical products share the first codeword",
     "share of product pairs with text similarity of 0.9 or more whose semantic IDs start with the same codeword"),
    ("nmi_l1", "First codeword follows the departments",
     "normalized mutual information between the first codeword and the top level of the category tree (1: the same "
     "grouping; the codes need not copy the tree)"),
    *((f"utilization_l{level}", f"Codewords in use, level {level}",
       f"share of level {level}'s codewords that some product's semantic ID uses") for level in (1, 2, 3, 4)),
    ("collision_rate", "Products sharing a whole ID",
     "share of products whose whole semantic ID another product of different text also has (lower is better)"),
    ("collision_rate_nearest", "Products sharing a whole ID, last level not spread",
     "the same with each product's nearest last codeword, before the assignment spreads products that collide"),
)
LOSS_KEYS_PREFERRED = ("total", "loss")


def loss_series(history: list[dict]) -> tuple[str, list[float]]:
    """The key plotted and its per-epoch values: "total" if logged, else the first loss key present."""
    if not history:
        return "", []
    keys = [k for k in history[0] if k != "epoch" and isinstance(history[0][k], (int, float))]
    key = next((k for k in LOSS_KEYS_PREFERRED if k in keys), keys[0] if keys else "")
    return key, [float(row.get(key, 0.0)) for row in history if isinstance(row.get(key), (int, float))]


def line_chart(values: list[float], *, width: int = 460, height: int = 160, pad: int = 30) -> dict:
    """Polyline points and axis labels for a line chart of `values`."""
    if not values:
        return {}
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    points = [
        (pad + i * step, height - pad - (v - low) / span * (height - 2 * pad)) for i, v in enumerate(values)
    ]
    return {
        "width": width, "height": height, "pad": pad,
        "points": " ".join(f"{x:.1f},{y:.1f}" for x, y in points),
        "dots": [{"x": round(x, 1), "y": round(y, 1), "v": v} for (x, y), v in zip(points, values)],
        "low": low, "high": high, "epochs": len(values), "right": width - pad, "bottom": height - pad,
    }


def level_bars(metrics: dict, *, levels: int = 4, width: int = 460, height: int = 160, pad: int = 30) -> list[dict]:
    """Bars of codebook utilization per level (0..1)."""
    bars = []
    slot = (width - 2 * pad) / levels
    for level in range(1, levels + 1):
        value = metrics.get(f"utilization_l{level}")
        if not isinstance(value, (int, float)):
            continue
        h = max(0.0, min(float(value), 1.0)) * (height - 2 * pad)
        bars.append({"level": level, "value": float(value), "x": round(pad + (level - 1) * slot + slot * 0.15, 1),
                     "w": round(slot * 0.7, 1), "y": round(height - pad - h, 1), "h": round(h, 1),
                     "cx": round(pad + (level - 0.5) * slot, 1)})
    return bars


def bar_chart(values: list[float], labels: list[str], *, width: int = 640, height: int = 180, pad: int = 30) -> dict:
    """Bars from zero for `values` (one per label), scaled to the largest."""
    if not values:
        return {}
    high = max(max(values), 1)
    slot = (width - 2 * pad) / len(values)
    bars = []
    for i, (value, label) in enumerate(zip(values, labels)):
        h = max(0.0, value) / high * (height - 2 * pad)
        bars.append({"value": value, "label": label, "x": round(pad + i * slot + slot * 0.12, 1),
                     "w": round(slot * 0.76, 1), "y": round(height - pad - h, 1), "h": round(h, 1),
                     "cx": round(pad + (i + 0.5) * slot, 1)})
    return {"width": width, "height": height, "pad": pad, "bottom": height - pad, "right": width - pad,
            "high": high, "bars": bars}
