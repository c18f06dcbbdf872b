"""Product text builders (catalog.text): pure functions, no database, no environment."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest

from catalog import text
from catalog.text import (
    FLAVORS,
    LLMConfig,
    LLMExtractor,
    discovery_text,
    extract_attributes,
    normalize_size,
    precision_text,
    product_text,
    text_hash,
)

PROTEIN_BAR = {
    "name": "Peanut Chocolate Protein Bar, Pack of 12",
    "brand": "Clif",
    "description": "Delicious and perfect for busy mornings! Made with roasted peanuts and "
                   "rich chocolate. Gluten-free, 20 g protein per bar.",
    "attributes": {"size": "720 g", "price": "24.99", "sku": "CLF-123",
                   "image_url": "https://example.com/x.jpg", "flavor": "chocolate peanut butter"},
    "category_path": "Candy & Chocolate > Chocolate > Chocolate Bars",
}


def test_flavors_are_precision_and_discovery():
    assert FLAVORS == ("precision", "discovery")


def test_category_path_never_appears_in_either_text():
    for flavor in FLAVORS:
        built = product_text(PROTEIN_BAR, flavor).lower()
        for level in ("candy", "chocolate bars", " > "):
            assert level not in built, (flavor, built)


def test_category_path_key_does_not_change_texts():
    without = {k: v for k, v in PROTEIN_BAR.items() if k != "category_path"}
    for flavor in FLAVORS:
        assert product_text(PROTEIN_BAR, flavor) == product_text(without, flavor)


def test_precision_text_has_name_brand_size_and_attributes_but_no_price_ids_or_copy():
    built = precision_text(PROTEIN_BAR)
    assert built.startswith("Peanut Chocolate Protein Bar, Pack of 12")
    assert "brand: Clif" in built
    assert "size: 720 g" in built
    assert "flavor: chocolate peanut butter" in built
    for absent in ("24.99", "CLF-123", "https://", "Delicious", "busy mornings"):
        assert absent not in built


def test_discovery_record_of_a_protein_bar():
    attributes = extract_attributes(PROTEIN_BAR)
    assert attributes["product_type"] == "protein bar"
    assert "peanut" in attributes["ingredients"]
    assert "chocolate" in attributes["ingredients"]
    assert attributes["dietary"] == ["gluten-free", "high-protein"]
    assert attributes["format"] == ["bar", "pack of 12"]
    assert attributes["size"] == "720 g"
    assert attributes["brand"] == "Clif"
    assert discovery_text(PROTEIN_BAR) == (
        "type: protein bar | ingredients: peanut, chocolate | dietary: gluten-free, high-protein"
        " | format: bar, pack of 12 | size: 720 g | brand: Clif"
    )


def test_discovery_text_drops_marketing_copy():
    built = discovery_text(PROTEIN_BAR).lower()
    for word in ("delicious", "perfect", "mornings", "rich"):
        assert word not in built


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Organic Almond Milk, 32 fl oz", "946 ml"),
        ("200 gm Pouch", "200 g"),
        ("500 g", "500 g"),
        ("1000 g", "1 kg"),
        ("1.5L", "1.5 l"),
        ("250 ml", "250 ml"),
        ("16 Fl. Oz", "473 ml"),
        ("2 lb", "907 g"),
        ("12 oz", "340 g"),
        ("1 gallon", "3.79 l"),
        ("12 ct", "12 count"),
        ("6 x 100 g", "600 g"),
        ("Muffin 200 g x 4", "800 g"),
        ("Kadai 2 in 1 - 3 Layer", ""),
        ("Garlic Capsule 500 mg", ""),
    ],
)
def test_sizes_are_normalized_to_canonical_units(raw, expected):
    assert normalize_size(raw) == expected


def test_size_in_the_name_is_used_when_attributes_have_none():
    record = {"name": "Organic Almond Milk, 32 fl oz", "brand": "Silk", "description": "", "attributes": {}}
    attributes = extract_attributes(record)
    assert attributes["product_type"] == "almond milk"
    assert attributes["dietary"] == ["organic"]
    assert attributes["size"] == "946 ml"


@pytest.mark.parametrize(
    ("name", "product_type"),
    [
        ("Whole Wheat Atta", "atta"),
        ("Organic Dal - Masoor", "dal"),
        ("Cow Ghee", "ghee"),
        ("Malai Paneer", "paneer"),
        ("Garam Masala", "masala"),
        ("Basmati Rice/Basmati Akki - Dubar", "basmati rice"),
        ("Extra Virgin Olive Oil", "olive oil"),
        ("Honey Nut Cereal", "cereal"),
        ("Strawberry Greek Yogurt", "greek yogurt"),
        ("Pizza for One Suprema  Frozen Pizza", "pizza"),
        ("Basil Dish Soap", "dish soap"),
        ("Chocolate Sandwich Cookies", "cookies"),
        ("Baking Soda Sparkling White Fluoride Toothpaste Mint Zing", "toothpaste"),
        ("Sea Salt Toffee 31% Cacao Milk Chocolate Bar", "chocolate"),
        ("Almond Milk Chocolate Bar", "chocolate"),
    ],
)
def test_product_type_is_the_head_noun_phrase(name, product_type):
    assert extract_attributes({"name": name})["product_type"] == product_type


def test_frozen_and_pack_formats():
    attributes = extract_attributes({"name": "Frozen Pepperoni Pizza 4 Pack", "brand": ""})
    assert attributes["format"] == ["frozen", "pack of 4"]


def test_ingredients_and_materials():
    rice = extract_attributes({"name": "Basmati Rice Flour Blend"})
    assert "basmati rice" in rice["ingredients"]
    towel = extract_attributes({"name": "Organic Cotton Kitchen Towels"})
    assert "cotton" in towel["ingredients"]


def test_negated_ingredients_are_not_reported():
    attributes = extract_attributes({"name": "Rusk", "description": "Made with wheat. No palm oil."})
    assert attributes["ingredients"] == ["wheat"]


def test_raw_csv_rows_work_and_price_column_is_ignored():
    row = {"external_id": "bb-1", "name": "Garlic Oil - Vegetarian Capsule 500 mg", "brand": "Sri Sri",
           "description": "", "category_path": "Beauty & Hygiene > Hair Care > Hair Oil & Serum", "price": "220"}
    assert precision_text(row) == "Garlic Oil - Vegetarian Capsule 500 mg | brand: Sri Sri"
    assert "hair" not in discovery_text(row).lower()


def test_product_text_rejects_an_unknown_flavor_by_naming_the_valid_ones():
    with pytest.raises(ValueError, match="precision, discovery"):
        product_text(PROTEIN_BAR, "semantic")


def test_product_text_uses_given_attributes():
    given = {"product_type": "widget", "ingredients": [], "dietary": [], "format": [], "size": "", "brand": "X"}
    assert product_text(PROTEIN_BAR, "discovery", given) == "type: widget | brand: X"


def test_text_hash_depends_on_text_and_model():
    base = text_hash("a text", "model-a")
    assert len(base) == 64 and int(base, 16) >= 0
    assert base == text_hash("a text", "model-a")
    assert base != text_hash("a text", "model-b")
    assert base != text_hash("another text", "model-a")


# --------------------------------------------------------------------------- LLM extractor

CANNED_ANSWER = {
    "product_type": "protein bar", "ingredients": ["peanut", "chocolate"], "dietary": ["vegan"],
    "format": ["bar"], "size": "60 g", "brand": "Clif",
}


class _ChatHandler(http.server.BaseHTTPRequestHandler):
    requests: list[dict] = []
    reply: str = json.dumps(CANNED_ANSWER)

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body, "authorization": self.headers["Authorization"]})
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": type(self).reply}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def chat_server():
    handler = type("Handler", (_ChatHandler,), {"requests": [], "reply": json.dumps(CANNED_ANSWER)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _llm(tmp_path, url, api_key="") -> LLMConfig:
    return LLMConfig(url=url, model="test-model", cache_dir=str(tmp_path / "llm-cache"), timeout=5, api_key=api_key)


def test_the_environment_does_not_reach_the_pure_builders(monkeypatch, tmp_path, chat_server):
    url, handler = chat_server
    monkeypatch.setenv("SEMID_LLM_URL", url)  # read by settings only, and passed in as an LLMConfig
    monkeypatch.setenv("SEMID_HOME", str(tmp_path))
    assert extract_attributes(PROTEIN_BAR) == text.rule_based_attributes(PROTEIN_BAR)
    assert handler.requests == []


def test_the_llm_settings_become_the_config_the_embedding_service_passes(settings, tmp_path):
    from catalog.embeddings import llm_config

    settings.SEMID_LLM_URL = ""
    assert llm_config() is None
    settings.SEMID_LLM_URL, settings.SEMID_LLM_MODEL, settings.SEMID_HOME = "http://llm:8000/v1", "m", tmp_path
    settings.SEMID_LLM_TIMEOUT, settings.SEMID_LLM_API_KEY = 7.0, "k"
    assert llm_config() == LLMConfig(url="http://llm:8000/v1", model="m", cache_dir=str(tmp_path / "llm-cache"),
                                     timeout=7.0, api_key="k")


def test_llm_answers_are_cached_so_the_same_text_costs_one_request(tmp_path, chat_server):
    url, handler = chat_server
    llm = _llm(tmp_path, url, api_key="sk-test")
    first = extract_attributes(PROTEIN_BAR, llm)
    second = extract_attributes(dict(PROTEIN_BAR), llm)
    assert first == second == {**CANNED_ANSWER, "size": "60 g"}
    assert len(handler.requests) == 1
    request = handler.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["model"] == "test-model"
    assert request["authorization"] == "Bearer sk-test"
    assert request["body"]["response_format"] == {"type": "json_object"}
    prompt = json.dumps(request["body"]["messages"])
    assert "Chocolate Bars" not in prompt  # the label never reaches the LLM either
    assert list((tmp_path / "llm-cache").rglob("*.json"))


def test_llm_cache_survives_a_new_process(tmp_path, chat_server):
    url, handler = chat_server
    extract_attributes(PROTEIN_BAR, _llm(tmp_path, url))
    fresh = LLMExtractor(url, "test-model", tmp_path / "llm-cache")
    assert fresh.extract(PROTEIN_BAR)["product_type"] == "protein bar"
    assert fresh.requests_made == 0 and len(handler.requests) == 1


def test_unreachable_llm_falls_back_to_rules(tmp_path):
    started = time.perf_counter()
    unreachable = _llm(tmp_path, "http://127.0.0.1:9/")
    assert extract_attributes(PROTEIN_BAR, unreachable) == text.rule_based_attributes(PROTEIN_BAR)
    assert time.perf_counter() - started < 5


def test_llm_gives_up_after_repeated_failures(tmp_path):
    extractor = LLMExtractor("http://127.0.0.1:9", "m", tmp_path)
    for i in range(10):
        assert extractor.extract({"name": f"Item {i}"}) is None
    assert extractor.given_up and extractor.requests_made == 3


@pytest.mark.parametrize("reply", ["not json at all", json.dumps({"product_type": "bar"}), "[1, 2]"])
def test_bad_llm_answers_fall_back_to_rules(tmp_path, chat_server, reply):
    url, handler = chat_server
    handler.reply = reply
    assert extract_attributes(PROTEIN_BAR, _llm(tmp_path, url)) == text.rule_based_attributes(PROTEIN_BAR)
    assert not list((tmp_path / "llm-cache").rglob("*.json"))
