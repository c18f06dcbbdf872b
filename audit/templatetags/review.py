"""How the flag pages put the evidence into words: the confidence as a band, the neighbours as a sentence."""

from django import template

register = template.Library()

# (lower bound, words): a calibrated P(label is wrong) read as a band, never as a bare "100%"
BANDS = ((0.9, "very likely wrong"), (0.7, "likely wrong"), (0.5, "possibly wrong"), (0.0, "probably right"))


@register.filter
def confidence_words(confidence) -> str:
    """'very likely wrong (about 97%)': the band, and the percentage kept within 1–99%."""
    confidence = float(confidence or 0.0)
    words = next(w for lower, w in BANDS if confidence >= lower)
    return f"{words} (about {min(max(round(confidence * 100), 1), 99)}%)"


def neighbour_summary(neighbours: list, suggested: str, label: str) -> str:
    """The nearest neighbours in plain words: "6 of the 8 most similar products are in Laundry Detergent;
    1 is in Dish Soap, where this one is filed"."""
    if not neighbours:
        return ""
    n = len(neighbours)
    in_suggested = sum(1 for x in neighbours if suggested and x.get("label") == suggested)
    in_label = sum(1 for x in neighbours if label and x.get("label") == label)
    leaf = (suggested or "").split(" > ")[-1]
    parts = [f"{in_suggested} of the {n} most similar products are in {leaf}" if suggested else
             f"the {n} most similar products"]
    here = label.split(" > ")[-1] if label else ""
    if label:
        parts.append(f"{in_label} {'is' if in_label == 1 else 'are'} in {here}, where this one is filed")
    return "; ".join(parts)
