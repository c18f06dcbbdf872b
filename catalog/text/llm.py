"""The discovery record from an OpenAI-compatible chat endpoint, with a file cache.

Optional: the caller passes an ``LLMConfig`` (the Django side builds it from the SEMID_LLM_*
settings); without one, or on any failure, the rule-based record is used (catalog.text.rules).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from catalog.text.records import (
    DISCOVERY_KEYS, MAX_INGREDIENTS, attribute_text, clean, compact_attributes, record_attributes,
)
from catalog.text.sizes import normalize_size

log = logging.getLogger(__name__)

_SYSTEM_PROMPT = (
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
_PROMPT_VERSION = "1"
_FAILURES_BEFORE_GIVING_UP = 3


@dataclass(frozen=True)
class LLMConfig:
    """Where and how to ask: settings SEMID_LLM_URL, SEMID_LLM_MODEL, SEMID_LLM_API_KEY, SEMID_LLM_TIMEOUT,
    and the answer cache under SEMID_HOME."""

    url: str
    model: str = "default"
    cache_dir: str = ".semid/llm-cache"
    timeout: float = 30.0
    api_key: str = ""


def llm_input_text(record: Mapping) -> str:
    """What the LLM sees: name, brand, size, attributes, description. Never the category."""
    lines = [f"name: {clean(record.get('name'))}"]
    brand = clean(record.get("brand"))
    if brand:
        lines.append(f"brand: {brand}")
    attributes = record_attributes(record)
    size = attribute_text(attributes.get("size"))
    if size:
        lines.append(f"size: {size}")
    lines.extend(f"{key}: {value}" for key, value in compact_attributes(attributes))
    description = clean(record.get("description"))
    if description:
        lines.append(f"description: {description[:2000]}")
    return "\n".join(lines)


def _as_list(value) -> list[str]:
    if isinstance(value, str):
        value = [v for v in re.split(r"[,;]", value)]
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return [clean(v).lower() for v in value if isinstance(v, (str, int, float)) and clean(v)]


def _normalize_answer(answer) -> dict:
    if not isinstance(answer, Mapping):
        raise ValueError("answer is not a JSON object")
    missing = [key for key in DISCOVERY_KEYS if key not in answer]
    if missing:
        raise ValueError(f"answer lacks {', '.join(missing)}")
    size = clean(answer["size"])
    return {
        "product_type": clean(answer["product_type"]).lower(),
        "ingredients": _as_list(answer["ingredients"])[:MAX_INGREDIENTS],
        "dietary": sorted(set(_as_list(answer["dietary"]))),
        "format": _as_list(answer["format"]),
        "size": normalize_size(size) or size.lower(),
        "brand": clean(answer["brand"]),
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
                 *, timeout: float = 30.0, api_key: str = ""):
        self.url = _chat_url(url)
        self.model = model
        self.cache_dir = Path(cache_dir)
        self.timeout = timeout
        self.api_key = api_key
        self.requests_made = 0
        self._failures_in_a_row = 0

    def cache_path(self, text: str) -> Path:
        key = hashlib.sha256(
            f"{self.model}\x00{_PROMPT_VERSION}\x00{text}".encode("utf-8")).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.json"

    @property
    def given_up(self) -> bool:
        return self._failures_in_a_row >= _FAILURES_BEFORE_GIVING_UP

    def extract(self, record: Mapping) -> dict | None:
        text = llm_input_text(record)
        path = self.cache_path(text)
        try:
            return _normalize_answer(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            pass
        if self.given_up:
            return None
        try:
            answer = _normalize_answer(self._ask(text))
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
        import urllib.request

        body = json.dumps({
            "model": self.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": _SYSTEM_PROMPT},
                {"role": "user", "content": text},
            ],
        }).encode("utf-8")
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"})
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        self.requests_made += 1
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            payload = json.loads(response.read().decode("utf-8"))
        content = payload["choices"][0]["message"]["content"]
        content = re.sub(r"^\s*```(?:json)?|```\s*$", "", content.strip())
        return json.loads(content)


@functools.cache
def extractor(config: LLMConfig) -> LLMExtractor:
    """One extractor per configuration and process: its give-up count outlives a single call."""
    return LLMExtractor(config.url, config.model, config.cache_dir, timeout=config.timeout, api_key=config.api_key)
