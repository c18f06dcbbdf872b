"""Demo catalog generator (catalog.demo): deterministic, no downloads, no database."""

from __future__ import annotations

import csv
import json

import pytest

from catalog import demo
from catalog.demo import COLUMNS, generate_demo_catalog, write_csv, write_jsonl
from catalog.text import FLAVORS, product_text


@pytest.fixture(scope="module")
def catalog():
    return generate_demo_catalog()


def test_same_seed_gives_byte_identical_csv(tmp_path):
    first = write_csv(generate_demo_catalog(seed=7), tmp_path / "a.csv").read_bytes()
    second = write_csv(generate_demo_catalog(seed=7), tmp_path / "b.csv").read_bytes()
    assert first == second
    other = write_csv(generate_demo_catalog(seed=8), tmp_path / "c.csv").read_bytes()
    assert other != first


def test_default_catalog_has_three_thousand_unique_products(catalog):
    ids = [row["external_id"] for row in catalog.rows]
    assert len(ids) == 3000 == len(set(ids))
    assert ids[0] == "DEMO-000001" and ids[-1] == "DEMO-003000"
    names = {(row["name"], row["brand"]) for row in catalog.rows}
    assert len(names) > 0.9 * len(catalog.rows)


def test_taxonomy_is_three_levels_of_realistic_size():
    paths = demo.leaf_paths()
    assert all(len(path.split(" > ")) == 3 for path in paths)
    assert 8 <= len({p.split(" > ")[0] for p in paths}) <= 10
    assert 25 <= len({p.rsplit(" > ", 1)[0] for p in paths}) <= 40
    assert 80 <= len(paths) <= 100
    assert len(set(paths)) == len(paths)
    for expected in ("Snacks > Bars > Protein Bars", "Pantry > Oils & Vinegars > Olive Oil",
                     "Household > Cleaning > Dish Soap", "Beverages > Coffee > Ground Coffee",
                     "Dairy & Eggs > Cheese > Hard Cheese"):
        assert expected in paths


def test_every_leaf_has_products_and_every_row_is_importable(catalog):
    assert {catalog.true_paths[r["external_id"]] for r in catalog.rows} == set(demo.leaf_paths())
    for row in catalog.rows:
        assert set(row) == set(COLUMNS)
        assert row["name"].strip() and row["brand"].strip() and row["size"].strip()
        assert row["category_path"] in demo.leaf_paths()
        assert float(row["price"]) > 0


def test_brands_span_several_per_leaf_and_some_span_departments(catalog):
    brands_by_leaf, departments_by_brand = {}, {}
    for row in catalog.rows:
        path = catalog.true_paths[row["external_id"]]
        brands_by_leaf.setdefault(path, set()).add(row["brand"])
        departments_by_brand.setdefault(row["brand"], set()).add(path.split(" > ")[0])
    assert min(len(b) for b in brands_by_leaf.values()) >= 3
    assert sum(len(d) > 1 for d in departments_by_brand.values()) >= 5


@pytest.mark.parametrize("rate", [0.03, 0.1])
def test_planted_share_matches_the_rate_and_labels_are_really_wrong(rate):
    catalog = generate_demo_catalog(n_products=2000, seed=3, mislabel_rate=rate)
    assert abs(len(catalog.planted) / 2000 - rate) < 0.005
    by_id = {row["external_id"]: row for row in catalog.rows}
    for external_id in catalog.planted:
        assert by_id[external_id]["category_path"] != catalog.true_paths[external_id]
    for external_id, row in by_id.items():
        if external_id not in catalog.planted:
            assert row["category_path"] == catalog.true_paths[external_id]


def test_planted_labels_are_mostly_siblings_or_look_alikes():
    catalog = generate_demo_catalog(n_products=6000, seed=1, mislabel_rate=0.1)
    by_id = {row["external_id"]: row for row in catalog.rows}
    near = 0
    for external_id in catalog.planted:
        true, wrong = catalog.true_paths[external_id], by_id[external_id]["category_path"]
        sibling = true.rsplit(" > ", 1)[0] == wrong.rsplit(" > ", 1)[0]
        near += sibling or wrong in demo.LOOKALIKES.get(true, [])
    assert near / len(catalog.planted) > 0.7
    assert any(  # a protein bar filed under chocolate bars, the textbook case
        catalog.true_paths[i] == "Snacks > Bars > Protein Bars"
        and by_id[i]["category_path"] == "Candy & Chocolate > Chocolate > Chocolate Bars"
        for i in catalog.planted
    )


def test_texts_of_planted_products_describe_what_they_really_are(catalog):
    for external_id in catalog.planted:
        row = next(r for r in catalog.rows if r["external_id"] == external_id)
        record = {**row, "attributes": {"size": row["size"], "price": row["price"]}}
        for flavor in FLAVORS:
            built = product_text(record, flavor)
            assert row["category_path"] not in built
            assert row["category_path"].rsplit(" > ", 1)[1].lower() not in built.lower() or \
                row["category_path"].rsplit(" > ", 1)[1].lower() in row["name"].lower()


def test_descriptions_carry_copy_and_ingredients(catalog):
    descriptions = [row["description"] for row in catalog.rows]
    assert sum("perfect for" in d.lower() or "best quality" in d.lower() for d in descriptions) > 100
    assert sum("made with" in d.lower() for d in descriptions) > 1500


def test_csv_round_trips(catalog, tmp_path):
    path = write_csv(catalog, tmp_path / "demo.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == COLUMNS
        assert list(reader) == catalog.rows


def test_jsonl_round_trips(catalog, tmp_path):
    path = write_jsonl(catalog, tmp_path / "demo.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows == catalog.rows
    assert list(rows[0]) == list(COLUMNS)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        generate_demo_catalog(n_products=0)
    with pytest.raises(ValueError):
        generate_demo_catalog(mislabel_rate=1.5)


# --------------------------------------------------------------------------- the demo's orders


@pytest.fixture(scope="module")
def orders(catalog):
    from collections import defaultdict

    from catalog.demo import generate_demo_orders

    by_order = defaultdict(list)
    for order_id, external_id, position, reordered in generate_demo_orders(catalog):
        by_order[order_id].append((position, external_id, reordered))
    return by_order


def test_orders_are_deterministic_and_in_the_import_format(catalog, tmp_path):
    from catalog.demo import ORDER_COLUMNS, generate_demo_orders, write_orders_csv

    first = write_orders_csv(generate_demo_orders(catalog, n_orders=50), tmp_path / "a.csv").read_bytes()
    assert first == write_orders_csv(generate_demo_orders(catalog, n_orders=50), tmp_path / "b.csv").read_bytes()
    assert first != write_orders_csv(generate_demo_orders(catalog, n_orders=50, seed=1), tmp_path / "c.csv").read_bytes()
    assert first.decode().splitlines()[0] == ",".join(ORDER_COLUMNS) == "order_id,external_id,add_to_cart_order,reordered"
    with pytest.raises(ValueError):
        generate_demo_orders(catalog, n_orders=0)


def test_every_order_lists_known_products_once_in_cart_order(catalog, orders):
    known = {row["external_id"] for row in catalog.rows}
    assert len(orders) == 12000
    for lines in orders.values():
        positions, products, reordered = zip(*lines)
        assert list(positions) == list(range(1, len(lines) + 1))
        assert len(set(products)) == len(products) and set(products) <= known
        assert set(reordered) <= {0, 1}
    sizes = [len(lines) for lines in orders.values()]
    assert min(sizes) >= 1 and 4 <= sum(sizes) / len(sizes) <= 5  # measured: 4.55 products an order


def test_orders_join_departments_the_tree_keeps_apart(catalog, orders):
    """Most orders cross departments (an Italian dinner: pasta and sauce from the pantry, cheese from dairy),
    and a product with a wrong label is bought as what it really is."""
    true_department = {e: p.split(" > ")[0] for e, p in catalog.true_paths.items()}
    crossing = [len({true_department[e] for _, e, _ in lines}) > 1 for lines in orders.values()]
    assert sum(crossing) / len(crossing) > 0.5  # measured: 0.87
    pasta_orders = [lines for lines in orders.values()
                    if any(catalog.true_paths[e].endswith("Dry Pasta") for _, e, _ in lines)]
    with_sauce = [any(catalog.true_paths[e].endswith("Pasta Sauce") for _, e, _ in lines) for lines in pasta_orders]
    assert sum(with_sauce) / len(with_sauce) > 0.4  # measured: 0.52; any order holds a sauce in 0.058
    bought = {e for lines in orders.values() for _, e, _ in lines}
    assert len(bought & catalog.planted) > len(catalog.planted) / 2  # measured: 85 of 90
    label = {row["external_id"]: row["category_path"] for row in catalog.rows}
    kind, filed = 0, 0  # a planted product's basket mates: of a habit of its true leaf, of a habit of its label
    for lines in orders.values():
        for _, e, _ in lines:
            if e in catalog.planted:
                mates = {catalog.true_paths[m] for _, m, _ in lines if m != e}
                kind += any(mates & set(h) for h in demo.HABITS.values() if catalog.true_paths[e] in h)
                filed += any(mates & set(h) for h in demo.HABITS.values() if label[e] in h)
    assert kind > 2 * filed, (kind, filed)  # measured: 1,491 against 249
