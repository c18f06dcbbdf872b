"""A flag's evidence, one typed object from the audit run to the flag page and the API.

`Evidence.from_scores` turns the scorer's evidence for one product (row indices and category ids, from
`Scores.evidence`) into what a reviewer reads (product ids and names, category paths); `to_json` is what
`Flag.evidence` stores and the API returns, `from_json` reads it back. The rejection signature and the
percentages the flag page draws are computed here, once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

# the nearest neighbours a flag keeps (the scorer finds more)
NEIGHBOURS_KEPT = 8


@dataclass(frozen=True)
class Cluster:
    """The deepest code prefix of the product with enough members, and its label make-up (top categories
    by count, unlabelled members left out)."""

    prefix: str = ""
    level: int | None = None
    size: int | None = None  # members, the product included
    composition: tuple[tuple[str, int], ...] = ()  # (category path, members), largest first

    @property
    def dominant(self) -> str:
        """The category most of the cluster is filed under ("" without members)."""
        return self.composition[0][0] if self.composition else ""

    @property
    def shares(self) -> list[tuple[str, int, float]]:
        """(path, members, percent of the cluster) per category of the make-up."""
        size = self.size or sum(n for _, n in self.composition) or 1
        return [(path, n, 100 * n / size) for path, n in self.composition]


@dataclass(frozen=True)
class Neighbour:
    """One of the most similar labelled products."""

    product: int
    external_id: str
    name: str
    label: str  # its category path
    similarity: float  # cosine


@dataclass(frozen=True)
class FlavorView:
    """What the other flavor's codes say about a product flagged by both (merged into one flag)."""

    suggested: str  # category path
    confidence: float


@dataclass(frozen=True)
class Evidence:
    cluster: Cluster = Cluster()
    neighbours: tuple[Neighbour, ...] = ()  # most similar first
    suggestions: tuple[tuple[str, float], ...] = ()  # (path, probability): the likeliest categories but the label
    signals: Mapping[str, float] = field(default_factory=dict)  # per signal: how strongly it says the label is wrong
    # the brand's other products carry the same label and similar products of other brands do not: a whole
    # brand line may be misfiled (the suggestion then ignores the brand's own labels)
    brand_led: bool = False
    flavors: Mapping[str, FlavorView] = field(default_factory=dict)  # by flavor, for a flag both flavors raised

    @classmethod
    def from_scores(cls, raw: dict, ids: Sequence[int], products: Mapping, paths: Mapping[int, str]) -> Evidence:
        """From `Scores.evidence(i, codes)`: `ids` maps the scorer's rows to product ids, `products` holds
        those products by id, `paths` the category paths by id."""
        cluster = raw["cluster"]
        neighbours = []
        for j, similarity, label in raw["neighbours"][:NEIGHBOURS_KEPT]:
            other = products[int(ids[j])]
            neighbours.append(Neighbour(product=other.pk, external_id=other.external_id, name=other.name,
                                        label=paths.get(label, ""), similarity=similarity))
        return cls(
            cluster=Cluster(prefix=cluster["prefix"], level=cluster["level"], size=cluster["size"],
                            composition=tuple((paths.get(c, "?"), n) for c, n in cluster["composition"])),
            neighbours=tuple(neighbours),
            suggestions=tuple((paths.get(c, "?"), round(p, 4)) for c, p in raw["suggestions"]),
            signals=dict(raw["signals"]),
            brand_led=bool(raw.get("brand_led", False)),
        )

    @classmethod
    def from_json(cls, data: Mapping | None) -> Evidence:
        """From `Flag.evidence`; a key an older row lacks takes its default."""
        data = data or {}
        cluster = data.get("cluster") or {}
        return cls(
            cluster=Cluster(prefix=cluster.get("prefix", ""), level=cluster.get("level"), size=cluster.get("size"),
                            composition=tuple((path, n) for path, n in cluster.get("composition", []))),
            neighbours=tuple(Neighbour(product=n.get("product"), external_id=n.get("external_id", ""),
                                       name=n.get("name", ""), label=n.get("label", ""),
                                       similarity=n.get("similarity", 0.0))
                             for n in data.get("neighbours", [])),
            suggestions=tuple((path, p) for path, p in data.get("suggestions", [])),
            signals=dict(data.get("signals") or {}),
            brand_led=bool(data.get("brand_led", False)),
            flavors={flavor: FlavorView(suggested=view.get("suggested", ""), confidence=view.get("confidence", 0.0))
                     for flavor, view in (data.get("flavors") or {}).items()},
        )

    def to_json(self) -> dict:
        """What `Flag.evidence` stores and the API returns (`flavors` only where another flavor joined)."""
        cluster = {"prefix": self.cluster.prefix, "level": self.cluster.level, "size": self.cluster.size,
                   "composition": [[path, n] for path, n in self.cluster.composition]}
        data = {
            "cluster": cluster,
            "neighbours": [{"product": n.product, "external_id": n.external_id, "name": n.name, "label": n.label,
                            "similarity": n.similarity} for n in self.neighbours],
            "suggestions": [[path, p] for path, p in self.suggestions],
            "signals": dict(self.signals),
            "brand_led": self.brand_led,
        }
        if self.flavors:
            data["flavors"] = {flavor: {"suggested": view.suggested, "confidence": view.confidence}
                               for flavor, view in self.flavors.items()}
        return data

    def signature(self, suggested: int | None) -> str:
        """What a rejection is about: the suggested category (id) and the category the cluster is mostly
        filed under. A rejected flag is raised again only once this changes."""
        return hashlib.sha256(f"{suggested}|{self.cluster.dominant}".encode()).hexdigest()[:16]

    def with_flavor(self, flavor: str, view: FlavorView) -> Evidence:
        """This evidence with another flavor's view of the product joined."""
        return replace(self, flavors={**self.flavors, flavor: view})

    @property
    def suggestion_shares(self) -> list[tuple[str, float]]:
        """(path, percent) per suggested category."""
        return [(path, 100 * p) for path, p in self.suggestions]

    @property
    def signal_shares(self) -> dict[str, float]:
        """Per signal, how strongly it says the label is wrong, in percent (0 to 100)."""
        return {name: max(0.0, min(100.0, 100.0 * float(value))) for name, value in self.signals.items()}
