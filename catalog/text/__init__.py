"""Product text, one builder per flavor (DESIGN.md 5.2). Pure Python: no Django, no environment.

- ``builders``: ``precision_text``, ``discovery_text``, ``product_text``, ``text_hash``
- ``rules``: the discovery record from vocabularies (catalog.vocab) and regexes, offline
- ``llm``: the same record from an OpenAI-compatible endpoint, cached; used only when the
  caller passes an ``LLMConfig`` (catalog.embeddings builds it from the SEMID_LLM_* settings)
- ``sizes``: sizes and pack counts in canonical units; ``tokens``: tokenizer and phrase matcher;
  ``records``: what the builders read from a record (never its ``category_path``)
"""

from catalog.text.builders import (
    FLAVORS, discovery_text, extract_attributes, precision_text, product_text, text_hash,
)
from catalog.text.llm import LLMConfig, LLMExtractor, llm_input_text
from catalog.text.records import DISCOVERY_KEYS, record_attributes
from catalog.text.rules import rule_based_attributes
from catalog.text.sizes import format_size, normalize_size

__all__ = [
    "DISCOVERY_KEYS", "FLAVORS", "LLMConfig", "LLMExtractor", "discovery_text", "extract_attributes", "format_size",
    "llm_input_text", "normalize_size", "precision_text", "product_text", "record_attributes",
    "rule_based_attributes", "text_hash",
]
