"""Words of a product text: lowercase ASCII tokens, and a greedy longest-match phrase table over them."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

_NON_ALNUM_RE = re.compile(r"[^0-9a-z]+")
_APOSTROPHE_RE = re.compile(r"['’`´]")


def ascii_lower(text: str) -> str:
    text = text.lower()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return text


def tokens(text: str) -> list[str]:
    """Lowercase ASCII word tokens; hyphens and punctuation split, apostrophes vanish."""
    return _NON_ALNUM_RE.sub(" ", _APOSTROPHE_RE.sub("", ascii_lower(text))).split()


def plural_variants(phrase: str) -> set[str]:
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


class PhraseTable:
    """Greedy longest-match lookup of multi-word phrases over a token list.

    Built from a vocabulary table (catalog.vocab): canonical value -> "|"-separated aliases."""

    def __init__(self, table: Mapping[str, str], *, plurals: bool = True):
        exact: dict[tuple[str, ...], str] = {}
        for canonical, aliases in table.items():
            for phrase in [canonical, *(a for a in aliases.split("|") if a)]:
                exact.setdefault(tuple(tokens(phrase)), canonical)
        lookup = dict(exact)
        if plurals:
            for key, canonical in exact.items():
                for variant in plural_variants(" ".join(key)):
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
