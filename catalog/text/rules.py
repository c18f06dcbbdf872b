"""The discovery record by rules: vocabularies (catalog.vocab) and regexes, offline and deterministic."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from catalog import vocab
from catalog.text.records import MAX_INGREDIENTS, attribute_text, clean, compact_attributes, record_attributes
from catalog.text.sizes import SIZE_RE, normalize_size, pack_count
from catalog.text.tokens import PhraseTable, tokens

_MAX_DESCRIPTION_TOKENS = 300
_MAX_DESCRIPTION_INGREDIENTS = 3

_TYPES = PhraseTable(vocab.PRODUCT_TYPES)
_INGREDIENTS = PhraseTable(vocab.INGREDIENTS)
_DIETARY = PhraseTable(vocab.DIETARY, plurals=False)
_FORMATS = PhraseTable(vocab.FORMATS)

_PROTEIN_GRAMS_RE = re.compile(r"\b(\d{2,3})\s*g(?:rams?)?\s+(?:of\s+)?protein\b", re.IGNORECASE)
_SEGMENT_RE = re.compile(
    r"\s+-\s*|\s*-\s+|\s*[,;:(){}\[\]|+*]\s*|\s{2,}|(?<=[A-Za-z])\s*/\s*(?=[A-Za-z])")
_QUALIFIERS = frozenset({"with", "for", "in", "from", "infused", "enriched", "made"})


def _segments(name: str) -> list[str]:
    return [s for s in _SEGMENT_RE.split(name) if s and s.strip()]


def _product_type(name: str, brand: str) -> tuple[str, set[str]]:
    """(product type, the name tokens it came from).

    Per part of the name (split at " - ", commas, brackets, slashes), the last type phrase
    wins, preferring the words before "with"/"for"/"in"; strong types beat weak ones
    (flavour-like words such as chocolate or honey) anywhere in the name.
    """
    segments = _segments(name)
    scanned = []
    for segment in segments:
        segment_tokens = tokens(segment)
        head_len = next((i for i, t in enumerate(segment_tokens) if i and t in _QUALIFIERS), len(segment_tokens))
        scanned.append((segment_tokens, head_len, _TYPES.scan(segment_tokens)))
    for strong in (True, False):
        for segment_tokens, head_len, matches in scanned:
            candidates = [m for m in matches if (m[2] not in vocab.WEAK_TYPES) == strong]
            if candidates:
                in_head = [m for m in candidates if m[1] <= head_len]
                start, end, canonical = (in_head or candidates)[-1]
                return canonical, set(segment_tokens[start:end])
    # Nothing known: the last content words of the first segment that has any.
    brand_tokens = set(tokens(brand))
    for segment in segments:
        words = [
            t for t in tokens(SIZE_RE.sub(" ", segment))
            if t not in vocab.MARKETING_WORDS and t not in brand_tokens and not t.isdigit()
            and (t,) not in _DIETARY.lookup and len(t) > 1
        ]
        if words:
            return " ".join(words[-3:]), set(words[-3:])
    return "", set()


def _ingredients(name_tokens: list[str], description_tokens: list[str],
                 type_words: set[str], product_type: str) -> list[str]:
    found: list[str] = []
    for text_tokens, cap in ((name_tokens, MAX_INGREDIENTS),
                             (description_tokens, _MAX_DESCRIPTION_INGREDIENTS)):
        added = 0
        for start, end, canonical in _INGREDIENTS.scan(text_tokens):
            if len(found) >= MAX_INGREDIENTS or added >= cap:
                break
            if canonical in found or canonical in vocab.INGREDIENT_STOPLIST:
                continue
            if start and text_tokens[start - 1] in vocab.NEGATIONS:
                continue
            if end < len(text_tokens) and text_tokens[end] == "free":
                continue
            words = set(text_tokens[start:end])
            if words <= type_words or canonical == product_type or words <= set(product_type.split()):
                continue
            found.append(canonical)
            added += 1
    return found


def _dietary(texts: Iterable[str]) -> list[str]:
    tags = set()
    for text in texts:
        tags.update(c for _, _, c in _DIETARY.scan(tokens(text)))
        if _PROTEIN_GRAMS_RE.search(text):
            tags.add("high-protein")
    return sorted(tags - vocab.DIETARY_DROP)


def _formats(name: str, size_text: str, description_tokens: list[str]) -> list[str]:
    found: list[str] = []
    for text_tokens in (tokens(name), tokens(size_text)):
        for _, _, canonical in _FORMATS.scan(text_tokens):
            if canonical not in found:
                found.append(canonical)
    if not found:
        for _, _, canonical in _FORMATS.scan(description_tokens):
            if canonical in vocab.DESCRIPTION_FORMATS and canonical not in found and len(found) < 2:
                found.append(canonical)
    count = pack_count(name) or pack_count(size_text)
    if count > 1:
        if "multipack" in found:
            found.remove("multipack")
        found.append(f"pack of {count}")
    return found


def rule_based_attributes(record: Mapping) -> dict:
    """The standardized record from vocabularies and regexes (offline, deterministic)."""
    name = clean(record.get("name"))
    brand = clean(record.get("brand"))
    attributes = record_attributes(record)
    size_text = attribute_text(attributes.get("size"))
    description_tokens = tokens(clean(record.get("description")))[:_MAX_DESCRIPTION_TOKENS]

    product_type, type_words = _product_type(name, brand)
    size = normalize_size(size_text) or normalize_size(name) or size_text.lower()
    attribute_texts = [text for _, text in compact_attributes(attributes)]
    return {
        "product_type": product_type,
        "ingredients": _ingredients(tokens(name), description_tokens, type_words, product_type),
        "dietary": _dietary([name, " ".join(description_tokens), *attribute_texts]),
        "format": _formats(name, size_text, description_tokens),
        "size": size,
        "brand": brand,
    }
