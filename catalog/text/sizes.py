"""Sizes and pack counts in free text, in canonical units: '32 fl oz' -> '946 ml', '6 x 100 g' -> '600 g'."""

from __future__ import annotations

import re

from catalog import vocab

_NUMBER = r"\d+/\d+|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d*\.\d+|\d+"
_UNIT = "|".join(
    re.escape(alias).replace(r"\ ", r"\s*")
    for alias in sorted(vocab.SIZE_UNITS, key=len, reverse=True)
)
SIZE_RE = re.compile(rf"(?<![\w.])({_NUMBER})\s*-?\s*({_UNIT})(?![a-z0-9])", re.IGNORECASE)
_MULTI_COUNT_FIRST_RE = re.compile(
    rf"(?<![\w.])(\d+)\s*[x×]\s*({_NUMBER})\s*-?\s*({_UNIT})(?![a-z0-9])", re.IGNORECASE)
_MULTI_COUNT_LAST_RE = re.compile(
    rf"(?<![\w.])({_NUMBER})\s*-?\s*({_UNIT})\s*[x×]\s*(\d+)(?![\w.])", re.IGNORECASE)
_PACK_RES = (
    re.compile(r"\bpack\s+of\s+(\d+)\b", re.IGNORECASE),
    re.compile(r"\b(\d+)\s*-?\s*(?:pack|pk|pks|packs|pack\s+of)\b(?!\s+of)", re.IGNORECASE),
    re.compile(r"\bset\s+of\s+(\d+)\b", re.IGNORECASE),
)
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
    match = SIZE_RE.search(text)
    if match:
        base, factor = _unit(match.group(2))
        amount = _parse_number(match.group(1)) * factor
        if amount > 0:
            return format_size(amount, base)
    return ""


def pack_count(text: str) -> int:
    """Items in a pack ('6 x 100 g', '4 Pack', 'Pack of 12'); 0 when the text names none."""
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
