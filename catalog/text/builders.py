"""The two product texts (DESIGN.md 5.2), and the hash that says when a stored embedding is stale.

- precision: the raw text a merchandiser would read (name, brand, size, compact attributes).
- discovery: the standardized attribute record (product type, key ingredients, dietary tags,
  format, size, brand) rendered as text; marketing copy is dropped.

Neither text ever contains the category label: a mislabeled product must embed next to what
it is, not next to where it was filed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from catalog.text.llm import LLMConfig, extractor
from catalog.text.records import attribute_text, clean, compact_attributes, record_attributes
from catalog.text.rules import rule_based_attributes
from catalog.text.tokens import tokens

FLAVORS = ("precision", "discovery")


def precision_text(record: Mapping) -> str:
    """Raw text: name, brand, size and compact attributes. No description, no category."""
    name = clean(record.get("name"))
    parts = [name]
    brand = clean(record.get("brand"))
    if brand:
        parts.append(f"brand: {brand}")
    attributes = record_attributes(record)
    size = attribute_text(attributes.get("size"))
    if size and tokens(size) and " ".join(tokens(size)) not in " ".join(tokens(name)):
        parts.append(f"size: {size}")
    parts.extend(f"{key}: {value}" for key, value in compact_attributes(attributes))
    return " | ".join(p for p in parts if p)


def extract_attributes(record: Mapping, llm: LLMConfig | None = None) -> dict:
    """The standardized attribute record of a product (keys: DISCOVERY_KEYS): the LLM's where one is
    configured and answers, else the rules'."""
    if llm is not None:
        answer = extractor(llm).extract(record)
        if answer is not None:
            return answer
    return rule_based_attributes(record)


def discovery_text(record: Mapping, attributes: dict | None = None, llm: LLMConfig | None = None) -> str:
    """The standardized record as text, e.g.
    'type: protein bar | ingredients: peanut, chocolate | dietary: gluten-free | format: bar,
    pack of 12 | size: 720 g | brand: Clif'."""
    if attributes is None:
        attributes = extract_attributes(record, llm)
    fields = (
        ("type", attributes.get("product_type")),
        ("ingredients", attributes.get("ingredients")),
        ("dietary", attributes.get("dietary")),
        ("format", attributes.get("format")),
        ("size", attributes.get("size")),
        ("brand", attributes.get("brand")),
    )
    parts = []
    for label, value in fields:
        if isinstance(value, (list, tuple)):
            value = ", ".join(clean(v) for v in value if clean(v))
        value = clean(value)
        if value:
            parts.append(f"{label}: {value}")
    return " | ".join(parts)


def product_text(record: Mapping, flavor: str, attributes: dict | None = None, llm: LLMConfig | None = None) -> str:
    if flavor == "precision":
        return precision_text(record)
    if flavor == "discovery":
        return discovery_text(record, attributes, llm)
    raise ValueError(f"unknown flavor {flavor!r}: choose one of {', '.join(FLAVORS)}")


def text_hash(text: str, model_name: str) -> str:
    """sha256 hex of model name and text: a stored embedding is stale when this changes."""
    return hashlib.sha256(f"{model_name}\x00{text}".encode("utf-8")).hexdigest()
