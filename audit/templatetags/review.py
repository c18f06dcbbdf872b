"""How the flag pages put the evidence into words: the confidence as a band, the neighbours as a sentence,
each scoring signal by name with what it measures, attribute values as text."""

from collections.abc import Sequence

from django import template

from audit.evidence import Evidence, Neighbour
from catalog.rows import PATH_SEPARATOR

register = template.Library()

# (lower bound, words): a calibrated P(label is wrong) read as a band, never as a bare "100%"
BANDS = ((0.9, "very likely wrong"), (0.7, "likely wrong"), (0.5, "possibly wrong"), (0.0, "probably right"))


@register.filter
def confidence_words(confidence) -> str:
    """'very likely wrong (about 97%)': the band, and the percentage kept within 1–99%."""
    confidence = float(confidence or 0.0)
    words = next(w for lower, w in BANDS if confidence >= lower)
    return f"{words} (about {min(max(round(confidence * 100), 1), 99)}%)"


def neighbour_summary(neighbours: Sequence[Neighbour], suggested: str, label: str) -> str:
    """The nearest neighbours (`Evidence.neighbours`) in plain words: "6 of the 8 most similar products are in
    Laundry Detergent; 1 is in Dish Soap, where this one is filed"."""
    if not neighbours:
        return ""
    n = len(neighbours)
    in_suggested = sum(1 for x in neighbours if suggested and x.label == suggested)
    in_label = sum(1 for x in neighbours if label and x.label == label)
    leaf = (suggested or "").split(" > ")[-1]
    parts = [f"{in_suggested} of the {n} most similar products are in {leaf}" if suggested else
             f"the {n} most similar products"]
    here = label.split(" > ")[-1] if label else ""
    if label:
        parts.append(f"{in_label} {'is' if in_label == 1 else 'are'} in {here}, where this one is filed")
    return "; ".join(parts)


# The audit's signals (audit.core.signals.SIGNALS): each says how strongly the current category looks wrong
SIGNAL_HELP = {
    "classifier": ("Text classifier", "a model trained on the rest of the catalog (never on this product) reads "
                   "the name, brand and description and finds the current category unlikely"),
    "codes": ("Semantic-ID cluster", "the products that share this product's semantic-ID prefix are mostly filed "
              "under other categories"),
    "knn": ("Nearest neighbours", "the products whose text is most similar to this one's are mostly filed under "
            "other categories"),
    "brand_out": ("Brand", "the brand's other products are filed under other categories (kept out of the "
                  "confidence; shown so a whole brand line filed elsewhere can be spotted)"),
}


@register.filter
def signal_rows(evidence: Evidence) -> list[dict]:
    """[{name, explanation, pct}] for a flag's signals, known ones first, in the scorer's order."""
    shares = evidence.signal_shares
    known = [k for k in SIGNAL_HELP if k in shares] + [k for k in shares if k not in SIGNAL_HELP]
    return [{"name": SIGNAL_HELP.get(k, (k.replace("_", " ").capitalize(), ""))[0],
             "explanation": SIGNAL_HELP.get(k, ("", ""))[1], "pct": shares[k]} for k in known]


@register.simple_tag
def signal_help() -> list[tuple[str, str]]:
    return list(SIGNAL_HELP.values())


@register.filter
def percent(pct) -> str:
    """A share out of 100 as the page says it: whole percents, but a share that is neither none nor all never
    rounds to "0%" or "100%" ("<1%", ">99%")."""
    pct = float(pct or 0.0)
    if 0 < pct < 1:
        return "<1%"
    if 99 < pct < 100:
        return ">99%"
    return f"{round(pct)}%"


@register.filter
def leaf_first(path: str) -> dict:
    """A category path for a narrow column: its leaf, then where it sits ("Gum & Mints", "Candy & Chocolate >
    Candy"), so that cutting the end keeps what tells two leaves of one aisle apart."""
    parent, _, leaf = (path or "").rpartition(PATH_SEPARATOR)
    return {"leaf": leaf, "parent": parent}


@register.filter
def filled(attributes) -> list[tuple[str, object]]:
    """(name, value) of the attributes that have a value: an attribute the extraction found nothing for (an
    empty list or string) says nothing to a reviewer."""
    return [(k, v) for k, v in (attributes or {}).items() if v not in (None, "", [], {})]


@register.filter
def as_text(value) -> str:
    """An attribute value as a person writes it: a list as "a, b", not "['a', 'b']"."""
    if isinstance(value, (list, tuple, set)):
        return ", ".join(as_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {as_text(v)}" for k, v in value.items())
    return "" if value is None else str(value)
