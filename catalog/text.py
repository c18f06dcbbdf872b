"""Product text, one builder per flavor (DESIGN.md 5.2). Pure Python, no Django.

- precision: the raw text a merchandiser would read (name, brand, size, compact attributes).
- discovery: a standardized attribute record (product type, key ingredients, dietary tags,
  format, size, brand) rendered as text; marketing copy is dropped.

Neither text ever contains the category label: a mislabeled product must embed next to what
it is, not next to where it was filed. A record's ``category_path`` key is ignored.

The standardizer is rule-based and offline by default (vocabularies in catalog.vocab). When
``SEMID_LLM_URL`` is set, an OpenAI-compatible chat endpoint extracts the same record, with a
file cache and the rule-based result as fallback on any error.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

from catalog import vocab

log = logging.getLogger(__name__)

FLAVORS = ("precision", "discovery")

DISCOVERY_KEYS = ("product_type", "ingredients", "dietary", "format", "size", "brand")

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
_MAX_DESCRIPTION_TOKENS = 300
_MAX_INGREDIENTS = 6
_MAX_DESCRIPTION_INGREDIENTS = 3


# --------------------------------------------------------------------------- tokenizing

_NON_ALNUM_RE = re.compile(r"[^0-9a-z]+")
_APOSTROPHE_RE = re.compile(r"['’`´]")
_SPACE_RE = re.compile(r"\s+")


def _ascii_lower(text: str) -> str:
    text = text.lower()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return text


def _tokens(text: str) -> list[str]:
    """Lowercase ASCII word tokens; hyphens and punctuation split, apostrophes vanish."""
    return _NON_ALNUM_RE.sub(" ", _APOSTROPHE_RE.sub("", _ascii_lower(text))).split()


def _variants(phrase: str) -> set[str]:
    """Singular/plural variants of a phrase's last word."""
    head, _, last = phrase.rpartition(" ")
    forms = {last + "s", last + "es"}
    if last.endswith("y") and len(last) > 2:
        forms.add(last[:-1] + "ies")
    if last.endswith("ies"):
        forms.add(last[:-3] + "y")
    if last.endswith(("ches", "shes", "sses", "xes", "oes")):
        forms.add(last[:-2])
    if last.endswith("s") and not last.endswith("ss"):
        forms.add(last[:-1])
    return {f"{head} {f}" if head else f for f in forms if len(f) > 2}


class _PhraseTable:
    """Greedy longest-match lookup of multi-word phrases over a token list."""

    def __init__(self, table: Mapping[str, str], *, plurals: bool = True):
        exact: dict[tuple[str, ...], str] = {}
        for canonical, aliases in table.items():
            for phrase in [canonical, *(a for a in aliases.split("|") if a)]:
                exact.setdefault(tuple(_tokens(phrase)), canonical)
        lookup = dict(exact)
        if plurals:
            for key, canonical in exact.items():
                for variant in _variants(" ".join(key)):
                    lookup.setdefault(tuple(variant.split()), canonical)
        lookup.pop((), None)
        self.lookup = lookup
        # Longest phrase per first word: most tokens start no phrase and cost one dict get.
        self.longest: dict[str, int] = {}
        for key in lookup:
            self.longest[key[0]] = max(self.longest.get(key[0], 0), len(key))

    def scan(self, tokens: list[str]) -> list[tuple[int, int, str]]:
        """Non-overlapping (start, end, canonical) matches, leftmost-longest."""
        found = []
        i, n = 0, len(tokens)
        lookup, longest = self.lookup, self.longest
        while i < n:
            max_len = longest.get(tokens[i], 0)
            for size in range(min(max_len, n - i), 0, -1):
                canonical = lookup.get(tuple(tokens[i:i + size]))
                if canonical is not None:
                    found.append((i, i + size, canonical))
                    i += size
                    break
            else:
                i += 1
        return found


_TYPES = _PhraseTable(vocab.PRODUCT_TYPES)
_INGREDIENTS = _PhraseTable(vocab.INGREDIENTS)
_DIETARY = _PhraseTable(vocab.DIETARY, plurals=False)
_FORMATS = _PhraseTable(vocab.FORMATS)


# --------------------------------------------------------------------------- sizes

_NUMBER = r"\d+/\d+|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d*\.\d+|\d+"
_UNIT = "|".join(
    re.escape(alias).replace(r"\ ", r"\s*")
    for alias in sorted(vocab.SIZE_UNITS, key=len, reverse=True)
)
_SIZE_RE = re.compile(rf"(?<![\w.])({_NUMBER})\s*-?\s*({_UNIT})(?![a-z0-9])", re.IGNORECASE)
_MULTI_COUNT_FIRST_RE = re.compile(
    rf"(?<![\w.])(\d+)\s*[x×]\s*({_NUMBER})\s*-?\s*({_UNIT})(?![a-z0-9])", re.IGNORECASE)
_MULTI_COUNT_LAST_RE = re.compile(
    rf"(?<![\w.])({_NUMBER})\s*-?\s*({_UNIT})\s*[x×]\s*(\d+)(?![\w.])", re.IGNORECASE)
_PACK_RES = (
    re.compile(r"\bpack\s+of\s+(\d+)\b", re.IGNORECASE),
    re.compile(r"\b(\d+)\s*-?\s*(?:pack|pk|pks|packs|pack\s+of)\b(?!\s+of)", re.IGNORECASE),
    re.compile(r"\bset\s+of\s+(\d+)\b", re.IGNORECASE),
)
_PROTEIN_GRAMS_RE = re.compile(r"\b(\d{2,3})\s*g(?:rams?)?\s+(?:of\s+)?protein\b", re.IGNORECASE)
_DIGIT_RE = re.compile(r"\d")
_UNIT_LOOKUP = {re.sub(r"[\s.]+", " ", k.lower()).strip(): v for k, v in vocab.SIZE_UNITS.items()}


def _parse_number(text: str) -> float:
    if "/" in text:
        top, bottom = text.split("/")
        return float(top) / float(bottom) if float(bottom) else 0.0
    return float(text.replace(",", ""))


def _unit_key(text: str) -> str:
    return re.sub(r"[\s.]+", " ", text.lower()).strip()


def _unit(text: str) -> tuple[str, float]:
    return _UNIT_LOOKUP[_unit_key(text)]


def _trim(value: float, places: int) -> str:
    text = f"{value:.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_size(amount: float, base_unit: str) -> str:
    """Canonical size text: '500 g', '1 kg', '1.5 l', '250 ml', '12 count'."""
    if base_unit == "count":
        return f"{_trim(amount, 1)} count"
    big, small = ("kg", "g") if base_unit == "g" else ("l", "ml")
    if amount >= 1000:
        return f"{_trim(amount / 1000, 2)} {big}"
    return f"{_trim(amount, 0 if amount >= 10 else 1)} {small}"


def normalize_size(text: str) -> str:
    """First size found in text as canonical units ('' when there is none).

    '32 fl oz' -> '946 ml', '200 gm Pouch' -> '200 g', '6 x 100 g' -> '600 g', '2 lb' -> '907 g'.
    """
    if not text or not _DIGIT_RE.search(text):
        return ""
    for regex, count_group, number_group, unit_group in (
        (_MULTI_COUNT_FIRST_RE, 1, 2, 3),
        (_MULTI_COUNT_LAST_RE, 3, 1, 2),
    ):
        match = regex.search(text)
        if match:
            base, factor = _unit(match.group(unit_group))
            amount = _parse_number(match.group(number_group)) * factor * int(match.group(count_group))
            if amount > 0:
                return format_size(amount, base)
    match = _SIZE_RE.search(text)
    if match:
        base, factor = _unit(match.group(2))
        amount = _parse_number(match.group(1)) * factor
        if amount > 0:
            return format_size(amount, base)
    return ""


def _pack_count(text: str) -> int:
    if not _DIGIT_RE.search(text):
        return 0
    for regex in (_MULTI_COUNT_FIRST_RE,):
        match = regex.search(text)
        if match:
            return int(match.group(1))
    match = _MULTI_COUNT_LAST_RE.search(text)
    if match:
        return int(match.group(3))
    for regex in _PACK_RES:
        match = regex.search(text)
        if match:
            return int(match.group(1))
    return 0


# --------------------------------------------------------------------------- record access

def _clean(value) -> str:
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


def _attribute_text(value) -> str:
    if isinstance(value, (list, tuple)):
        value = ", ".join(_clean(v) for v in value if _clean(v))
    elif isinstance(value, Mapping):
        return ""
    text = _clean(value)
    if not text or len(text) > _MAX_ATTRIBUTE_VALUE_CHARS or "://" in text:
        return ""
    return text


def _compact_attributes(attributes: Mapping) -> list[tuple[str, str]]:
    shown = []
    for key in sorted(attributes, key=str):
        if _SKIP_ATTRIBUTE_RE.search(str(key)):
            continue
        text = _attribute_text(attributes[key])
        if text:
            shown.append((str(key).replace("_", " ").strip(), text))
    return shown


# --------------------------------------------------------------------------- precision

def precision_text(record: Mapping) -> str:
    """Raw text: name, brand, size and compact attributes. No description, no category."""
    name = _clean(record.get("name"))
    parts = [name]
    brand = _clean(record.get("brand"))
    if brand:
        parts.append(f"brand: {brand}")
    attributes = record_attributes(record)
    size = _attribute_text(attributes.get("size"))
    if size and _tokens(size) and " ".join(_tokens(size)) not in " ".join(_tokens(name)):
        parts.append(f"size: {size}")
    parts.extend(f"{key}: {value}" for key, value in _compact_attributes(attributes))
    return " | ".join(p for p in parts if p)


# --------------------------------------------------------------------------- discovery, rules

_SEGMENT_RE = re.compile(
    r"\s+-\s*|\s*-\s+|\s*[,;:(){}\[\]|+*]\s*|\s{2,}|(?<=[A-Za-z])\s*/\s*(?=[A-Za-z])")


def _segments(name: str) -> list[str]:
    return [s for s in _SEGMENT_RE.split(name) if s and s.strip()]


_QUALIFIERS = frozenset({"with", "for", "in", "from", "infused", "enriched", "made"})


def _product_type(name: str, brand: str) -> tuple[str, set[str]]:
    """(product type, the name tokens it came from).

    Per part of the name (split at " - ", commas, brackets, slashes), the last type phrase
    wins, preferring the words before "with"/"for"/"in"; strong types beat weak ones
    (flavour-like words such as chocolate or honey) anywhere in the name.
    """
    segments = _segments(name)
    scanned = []
    for segment in segments:
        tokens = _tokens(segment)
        head_len = next((i for i, t in enumerate(tokens) if i and t in _QUALIFIERS), len(tokens))
        scanned.append((tokens, head_len, _TYPES.scan(tokens)))
    for strong in (True, False):
        for tokens, head_len, matches in scanned:
            candidates = [m for m in matches if (m[2] not in vocab.WEAK_TYPES) == strong]
            if candidates:
                in_head = [m for m in candidates if m[1] <= head_len]
                start, end, canonical = (in_head or candidates)[-1]
                return canonical, set(tokens[start:end])
    # Nothing known: the last content words of the first segment that has any.
    brand_tokens = set(_tokens(brand))
    for segment in segments:
        words = [
            t for t in _tokens(_SIZE_RE.sub(" ", segment))
            if t not in vocab.MARKETING_WORDS and t not in brand_tokens and not t.isdigit()
            and (t,) not in _DIETARY.lookup and len(t) > 1
        ]
        if words:
            return " ".join(words[-3:]), set(words[-3:])
    return "", set()


def _ingredients(name_tokens: list[str], description_tokens: list[str],
                 type_words: set[str], product_type: str) -> list[str]:
    found: list[str] = []
    for tokens, cap in ((name_tokens, _MAX_INGREDIENTS),
                        (description_tokens, _MAX_DESCRIPTION_INGREDIENTS)):
        added = 0
        for start, end, canonical in _INGREDIENTS.scan(tokens):
            if len(found) >= _MAX_INGREDIENTS or added >= cap:
                break
            if canonical in found or canonical in vocab.INGREDIENT_STOPLIST:
                continue
            if start and tokens[start - 1] in vocab.NEGATIONS:
                continue
            if end < len(tokens) and tokens[end] == "free":
                continue
            words = set(tokens[start:end])
            if words <= type_words or canonical == product_type or words <= set(product_type.split()):
                continue
            found.append(canonical)
            added += 1
    return found


def _dietary(texts: Iterable[str]) -> list[str]:
    tags = set()
    for text in texts:
        tokens = _tokens(text)
        tags.update(c for _, _, c in _DIETARY.scan(tokens))
        if _PROTEIN_GRAMS_RE.search(text):
            tags.add("high-protein")
    return sorted(tags - vocab.DIETARY_DROP)


def _formats(name: str, size_text: str, description_tokens: list[str]) -> list[str]:
    found: list[str] = []
    for tokens in (_tokens(name), _tokens(size_text)):
        for _, _, canonical in _FORMATS.scan(tokens):
            if canonical not in found:
                found.append(canonical)
    if not found:
        for _, _, canonical in _FORMATS.scan(description_tokens):
            if canonical in vocab.DESCRIPTION_FORMATS and canonical not in found and len(found) < 2:
                found.append(canonical)
    count = _pack_count(name) or _pack_count(size_text)
    if count > 1:
        if "multipack" in found:
            found.remove("multipack")
        found.append(f"pack of {count}")
    return found


def rule_based_attributes(record: Mapping) -> dict:
    """The standardized record from vocabularies and regexes (offline, deterministic)."""
    name = _clean(record.get("name"))
    brand = _clean(record.get("brand"))
    attributes = record_attributes(record)
    size_text = _attribute_text(attributes.get("size"))
    description_tokens = _tokens(_clean(record.get("description")))[:_MAX_DESCRIPTION_TOKENS]

    product_type, type_words = _product_type(name, brand)
    size = normalize_size(size_text) or normalize_size(name) or size_text.lower()
    attribute_texts = [text for _, text in _compact_attributes(attributes)]
    return {
        "product_type": product_type,
        "ingredients": _ingredients(_tokens(name), description_tokens, type_words, product_type),
        "dietary": _dietary([name, " ".join(description_tokens), *attribute_texts]),
        "format": _formats(name, size_text, description_tokens),
        "size": size,
        "brand": brand,
    }


# --------------------------------------------------------------------------- discovery, LLM

_LLM_SYSTEM_PROMPT = (
    "You standardize grocery and household product listings. Reply with one JSON object "
    "with exactly these keys: product_type (string: the head noun phrase, e.g. 'olive oil', "
    "'protein bar', 'toothpaste'), ingredients (list of short strings: key ingredients, "
    "flavours or material), dietary (list of tags such as organic, gluten-free, vegan, "
    "vegetarian, sugar-free, low-fat, dairy-free, whole grain, keto, non-gmo), format (list: "
    "pack or form such as bottle, can, pouch, jar, box, sachet, tablets, powder, bar, frozen, "
    "'pack of 6'), size (string in g, kg, ml, l or count, e.g. '500 g', '1.5 l', '12 count'; "
    "empty if unknown), brand (string). Lowercase everything except the brand. Ignore "
    "marketing claims. Never guess a store category."
)
_LLM_PROMPT_VERSION = "1"
_LLM_FAILURES_BEFORE_GIVING_UP = 3


def llm_input_text(record: Mapping) -> str:
    """What the LLM sees: name, brand, size, attributes, description. Never the category."""
    lines = [f"name: {_clean(record.get('name'))}"]
    brand = _clean(record.get("brand"))
    if brand:
        lines.append(f"brand: {brand}")
    attributes = record_attributes(record)
    size = _attribute_text(attributes.get("size"))
    if size:
        lines.append(f"size: {size}")
    lines.extend(f"{key}: {value}" for key, value in _compact_attributes(attributes))
    description = _clean(record.get("description"))
    if description:
        lines.append(f"description: {description[:2000]}")
    return "\n".join(lines)


def _as_list(value) -> list[str]:
    if isinstance(value, str):
        value = [v for v in re.split(r"[,;]", value)]
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return [_clean(v).lower() for v in value if isinstance(v, (str, int, float)) and _clean(v)]


def _normalize_llm_answer(answer) -> dict:
    if not isinstance(answer, Mapping):
        raise ValueError("answer is not a JSON object")
    missing = [key for key in DISCOVERY_KEYS if key not in answer]
    if missing:
        raise ValueError(f"answer lacks {', '.join(missing)}")
    size = _clean(answer["size"])
    return {
        "product_type": _clean(answer["product_type"]).lower(),
        "ingredients": _as_list(answer["ingredients"])[:_MAX_INGREDIENTS],
        "dietary": sorted(set(_as_list(answer["dietary"]))),
        "format": _as_list(answer["format"]),
        "size": normalize_size(size) or size.lower(),
        "brand": _clean(answer["brand"]),
    }


def _chat_url(url: str) -> str:
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return f"{url}/chat/completions"
    return f"{url}/v1/chat/completions"


class LLMExtractor:
    """Attribute extraction through an OpenAI-compatible /v1/chat/completions endpoint.

    Each answer is cached as JSON in ``cache_dir``, keyed by sha256 of model, prompt version
    and input text, so a rerun costs no requests. ``extract`` returns None on any failure
    (the caller falls back to rules); after a few failures in a row the endpoint is
    considered down for the rest of the process, so a dead server costs seconds, not hours.
    """

    def __init__(self, url: str, model: str = "default", cache_dir: str | os.PathLike = ".semid/llm-cache",
                 *, timeout: float = 30.0):
        self.url = _chat_url(url)
        self.model = model
        self.cache_dir = Path(cache_dir)
        self.timeout = timeout
        self.requests_made = 0
        self._failures_in_a_row = 0

    def cache_path(self, text: str) -> Path:
        key = hashlib.sha256(
            f"{self.model}\x00{_LLM_PROMPT_VERSION}\x00{text}".encode("utf-8")).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.json"

    @property
    def given_up(self) -> bool:
        return self._failures_in_a_row >= _LLM_FAILURES_BEFORE_GIVING_UP

    def extract(self, record: Mapping) -> dict | None:
        text = llm_input_text(record)
        path = self.cache_path(text)
        try:
            return _normalize_llm_answer(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            pass
        if self.given_up:
            return None
        try:
            answer = _normalize_llm_answer(self._ask(text))
        except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
            self._failures_in_a_row += 1
            log.warning("LLM extractor at %s failed (%s); using rule-based attributes", self.url, error)
            if self.given_up:
                log.warning("LLM extractor at %s failed %d times in a row; not asking again",
                            self.url, self._failures_in_a_row)
            return None
        self._failures_in_a_row = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(answer, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
        return answer

    def _ask(self, text: str) -> dict:
        body = json.dumps({
            "model": self.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": _LLM_SYSTEM_PROMPT},
                {"role": "user", "content": text},
            ],
        }).encode("utf-8")
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"})
        api_key = os.environ.get("SEMID_LLM_API_KEY")
        if api_key:
            request.add_header("Authorization", f"Bearer {api_key}")
        self.requests_made += 1
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            payload = json.loads(response.read().decode("utf-8"))
        content = payload["choices"][0]["message"]["content"]
        content = re.sub(r"^\s*```(?:json)?|```\s*$", "", content.strip())
        return json.loads(content)


@functools.lru_cache(maxsize=8)
def _extractor(url: str, model: str, cache_dir: str, timeout: float) -> LLMExtractor:
    return LLMExtractor(url, model, cache_dir, timeout=timeout)


def configured_extractor() -> LLMExtractor | None:
    """The LLM extractor configured by the environment, or None (rules only)."""
    url = os.environ.get("SEMID_LLM_URL", "").strip()
    if not url:
        return None
    home = os.environ.get("SEMID_HOME", "").strip() or ".semid"
    return _extractor(
        url,
        os.environ.get("SEMID_LLM_MODEL", "").strip() or "default",
        str(Path(home) / "llm-cache"),
        float(os.environ.get("SEMID_LLM_TIMEOUT", "30")),
    )


def extract_attributes(record: Mapping) -> dict:
    """The standardized attribute record of a product (keys: DISCOVERY_KEYS)."""
    extractor = configured_extractor()
    if extractor is not None:
        answer = extractor.extract(record)
        if answer is not None:
            return answer
    return rule_based_attributes(record)


# --------------------------------------------------------------------------- rendering

def discovery_text(record: Mapping, attributes: dict | None = None) -> str:
    """The standardized record as text, e.g.
    'type: protein bar | ingredients: peanut, chocolate | dietary: gluten-free | format: bar,
    pack of 12 | size: 720 g | brand: Clif'."""
    if attributes is None:
        attributes = extract_attributes(record)
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
            value = ", ".join(_clean(v) for v in value if _clean(v))
        value = _clean(value)
        if value:
            parts.append(f"{label}: {value}")
    return " | ".join(parts)


def product_text(record: Mapping, flavor: str, attributes: dict | None = None) -> str:
    if flavor == "precision":
        return precision_text(record)
    if flavor == "discovery":
        return discovery_text(record, attributes)
    raise ValueError(f"unknown flavor {flavor!r}: choose one of {', '.join(FLAVORS)}")


def text_hash(text: str, model_name: str) -> str:
    """sha256 hex of model name and text: a stored embedding is stale when this changes."""
    return hashlib.sha256(f"{model_name}\x00{text}".encode("utf-8")).hexdigest()
