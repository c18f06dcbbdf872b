"""What the text builders read from a product record, and the shape of the discovery record they make.

A record is a plain mapping: name, brand, description, attributes (a dict), and any extra
top-level keys of a raw CSV row, which count as attributes. Its ``category_path`` is never read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# The standardized attribute record behind a discovery text.
DISCOVERY_KEYS = ("product_type", "ingredients", "dietary", "format", "size", "brand")
MAX_INGREDIENTS = 6

# Keys of a raw record that are not attributes.
_CORE_KEYS = frozenset({
    "external_id", "name", "brand", "description", "category_path", "category", "attributes",
})
# Attribute keys never shown in a text: prices, identifiers, links, anything category-like.
_SKIP_ATTRIBUTE_RE = re.compile(
    r"price|mrp|cost|discount|currency|^id$|_id$|^id_|sku|upc|ean|gtin|barcode|asin|url|link|"
    r"image|img|href|categ|department|aisle|taxonomy|^type$|^leaf|rating|review|stock|inventory|"
    r"created|updated|timestamp|^external|^name$|^brand$|^description$|^size$|label",
    re.IGNORECASE,
)
_MAX_ATTRIBUTE_VALUE_CHARS = 80
_SPACE_RE = re.compile(r"\s+")


def clean(value) -> str:
    """A value as one line of text, whitespace collapsed ('' for None)."""
    if value is None:
        return ""
    return _SPACE_RE.sub(" ", str(value)).strip()


def record_attributes(record: Mapping) -> dict:
    """The record's attributes, plus any extra top-level keys (a raw CSV row)."""
    attributes = dict(record.get("attributes") or {})
    for key, value in record.items():
        if key not in _CORE_KEYS and key not in attributes:
            attributes[key] = value
    return attributes


def attribute_text(value) -> str:
    """An attribute value worth showing as text ('' for nested objects, links, long values)."""
    if isinstance(value, (list, tuple)):
        value = ", ".join(clean(v) for v in value if clean(v))
    elif isinstance(value, Mapping):
        return ""
    text = clean(value)
    if not text or len(text) > _MAX_ATTRIBUTE_VALUE_CHARS or "://" in text:
        return ""
    return text


def compact_attributes(attributes: Mapping) -> list[tuple[str, str]]:
    """(label, text) of the attributes a text shows, sorted by key: no prices, ids, links or categories."""
    shown = []
    for key in sorted(attributes, key=str):
        if _SKIP_ATTRIBUTE_RE.search(str(key)):
            continue
        text = attribute_text(attributes[key])
        if text:
            shown.append((str(key).replace("_", " ").strip(), text))
    return shown
