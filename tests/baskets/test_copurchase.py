"""Co-purchase counts, lift and PMI on a toy set checked by hand, and the complements read from them."""

import math

import pytest

from baskets.models import CoPurchase
from baskets.selectors import complements
from baskets.services import MIN_PAIR_SUPPORT, compute_copurchase, import_baskets
from tests.baskets.conftest import HEADER, write

# Six orders (N = 6). Orders holding each product: milk 4, bread 3, butter 3, jam 1, chips 2, salsa 2.
TOY = {
    1: ["milk", "bread", "butter"],
    2: ["milk", "bread"],
    3: ["milk", "butter"],
    4: ["bread", "butter", "jam"],
    5: ["chips", "salsa"],
    6: ["chips", "salsa", "milk"],
}
# By hand: lift = orders together * N / (orders with a * orders with b); pmi = log2(lift).
EXPECTED = {  # pair: (orders together, lift, pmi)
    ("bread", "milk"): (2, 2 * 6 / (3 * 4), 0.0),       # 1: exactly chance
    ("butter", "milk"): (2, 2 * 6 / (3 * 4), 0.0),      # 1
    ("bread", "butter"): (2, 2 * 6 / (3 * 3), 0.4150),  # 4/3
    ("bread", "jam"): (1, 1 * 6 / (3 * 1), 1.0),        # 2
    ("butter", "jam"): (1, 1 * 6 / (3 * 1), 1.0),       # 2
    ("chips", "salsa"): (2, 2 * 6 / (2 * 2), 1.5850),   # 3
    ("chips", "milk"): (1, 1 * 6 / (2 * 4), -0.4150),   # 0.75: less than chance
    ("milk", "salsa"): (1, 1 * 6 / (4 * 2), -0.4150),   # 0.75
}


def basket_file(tmp_path, orders: dict[int, list[str]]):
    rows = [f"{order},{product},{position},0" for order, products in orders.items()
            for position, product in enumerate(products, start=1)]
    return write(tmp_path, HEADER + "\n".join(rows) + "\n")


def stored_pairs() -> dict:
    return {
        tuple(sorted((pair.product_a.external_id, pair.product_b.external_id))): (pair.orders, pair.lift, pair.pmi)
        for pair in CoPurchase.objects.select_related("product_a", "product_b")
    }


@pytest.fixture
def toy(catalog, tmp_path):
    import_baskets(path=basket_file(tmp_path, TOY))
    return catalog


def test_counts_lift_and_pmi_match_the_hand_computed_values(toy):
    assert compute_copurchase(min_support=1) == 8

    pairs = stored_pairs()
    assert sorted(pairs) == sorted(EXPECTED)
    for pair, (orders, lift, pmi) in EXPECTED.items():
        assert pairs[pair][0] == orders, pair
        assert pairs[pair][1] == pytest.approx(lift), pair
        assert pairs[pair][2] == pytest.approx(pmi, abs=1e-4), pair
        assert pairs[pair][2] == pytest.approx(math.log2(lift)), pair


def test_pairs_seen_in_fewer_orders_than_the_minimum_support_are_not_stored(toy):
    assert compute_copurchase(min_support=2) == 4

    assert sorted(stored_pairs()) == [("bread", "butter"), ("bread", "milk"), ("butter", "milk"), ("chips", "salsa")]


def test_the_import_keeps_pairs_from_min_pair_support_orders_on(catalog, tmp_path):
    orders = {n: ["milk", "bread"] for n in range(1, MIN_PAIR_SUPPORT + 1)}  # together MIN_PAIR_SUPPORT times
    orders |= {100 + n: ["milk", "jam"] for n in range(MIN_PAIR_SUPPORT - 1)}  # one order short
    orders |= {200 + n: ["chips"] for n in range(20)}

    result = import_baskets(path=basket_file(tmp_path, orders))

    assert result.pairs == 1
    assert list(stored_pairs()) == [("bread", "milk")]


def test_complements_are_above_chance_the_most_surely_first(toy):
    compute_copurchase(min_support=1)

    def names(external_id, **options):
        return [c.product.external_id for c in complements(product=toy[external_id], **options)]

    # bread: butter (2 orders, lift 4/3: at least 0.230 at 95%) before jam (1 order, lift 2: at least 0.079);
    # milk (lift 1: chance) is not a complement
    assert names("bread") == ["butter", "jam"]
    assert names("butter") == ["bread", "jam"]
    assert names("jam") == ["bread", "butter"]  # same lift and orders: a fixed order
    assert names("milk") == []  # with nothing above chance
    assert names("bread", min_support=2) == ["butter"]  # jam shares a single order
    assert names("bread", k=1) == ["butter"]


def test_a_pair_of_many_orders_comes_before_one_of_a_few_with_a_little_more_lift(catalog, tmp_path):
    # N = 400 orders: milk and bread in 200 each, together in 166 (lift 166 * 400 / (200 * 200) = 1.66: at least
    # 1.45 at 95%); jam in 7, with milk and bread in 6 of them (lift 6 * 400 / (200 * 7) = 1.71: at least 0.75).
    orders = {n: ["milk", "bread"] for n in range(1, 161)}
    orders |= {200 + n: ["milk"] for n in range(34)} | {300 + n: ["bread"] for n in range(34)}
    orders |= {400 + n: ["milk", "bread", "jam"] for n in range(6)} | {500: ["jam"]}
    orders |= {600 + n: ["chips"] for n in range(400 - len(orders))}
    import_baskets(path=basket_file(tmp_path, orders))
    by_name = {c.product.external_id: c for c in complements(product=catalog["milk"])}
    assert (by_name["bread"].orders, by_name["jam"].orders) == (166, 6)
    assert by_name["jam"].lift > by_name["bread"].lift  # jam: a little more lift, from six orders

    assert [c.product.external_id for c in complements(product=catalog["milk"])] == ["bread", "jam"]


def test_the_lift_bound_is_near_the_exact_poisson_bound_and_the_same_in_sql(db):
    from django.db import connection
    from scipy import stats

    from baskets.core.copurchase import LIFT_BOUND_Z, lift_bound, lift_bound_sql

    for orders in (6, 20, 100, 1000):  # exact: the lower end of a one-sided Poisson interval, over the count
        exact = stats.chi2.ppf(stats.norm.cdf(-LIFT_BOUND_Z), 2 * orders) / 2 / orders
        assert lift_bound(3.0, orders) == pytest.approx(3.0 * exact, rel=0.01), orders
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {lift_bound_sql('3.0', '6')}, {lift_bound_sql('3.0', '100')}")
        assert cursor.fetchone() == (pytest.approx(lift_bound(3.0, 6)), pytest.approx(lift_bound(3.0, 100)))


def test_a_complement_carries_its_category_department_and_shared_semantic_id_prefix(toy):
    from quantizer.models import QuantizerRun, SemanticId

    compute_copurchase(min_support=1)
    codes = {
        "precision": {"chips": [1, 2, 3, 4], "salsa": [1, 2, 5, 0], "bread": [3, 1, 1, 1], "jam": [3, 2, 0, 0],
                      "butter": [4, 0, 0, 0], "milk": [5, 0, 0, 0]},
        "discovery": {"chips": [7, 7, 7, 7], "salsa": [7, 7, 7, 8]},  # bread and jam not coded by this run
    }
    for flavor, by_product in codes.items():
        run = QuantizerRun.objects.create(flavor=flavor, embedding_model="test", is_active=True,
                                          status=QuantizerRun.Status.SUCCEEDED)
        SemanticId.objects.bulk_create(
            SemanticId(run=run, product=toy[e], codes=c, code="_".join(map(str, c))) for e, c in by_product.items())

    (salsa,) = complements(product=toy["chips"])
    assert (salsa.product.name, salsa.category_path, salsa.other_department) == ("Salsa Verde", "pantry > salsa", True)
    assert (salsa.orders, salsa.lift) == (2, pytest.approx(3.0))
    assert [(s.flavor, s.prefix, s.levels) for s in salsa.shared] == [("discovery", "7_7_7", 3), ("precision", "1_2", 2)]

    butter, jam = complements(product=toy["bread"])  # the surer first
    assert (jam.category_path, jam.other_department) == ("breakfast > spreads", False)  # bread's department
    assert [(s.flavor, s.prefix) for s in jam.shared] == [("precision", "3")]
    assert butter.other_department is True
    assert [(s.flavor, s.prefix, s.levels) for s in butter.shared] == [("precision", "", 0)]  # no level shared


def test_a_reimport_that_changes_lines_recomputes_the_pairs_and_one_that_does_not_keeps_them(toy, tmp_path):
    compute_copurchase(min_support=1)
    assert CoPurchase.objects.count() == 8

    assert import_baskets(path=basket_file(tmp_path, TOY)).pairs == 8  # the same lines: the same pairs
    assert CoPurchase.objects.count() == 8

    result = import_baskets(path=basket_file(tmp_path, {7: ["jam", "salsa"]}))  # a new order

    assert result.pairs == CoPurchase.objects.count() == 0  # recomputed from all orders, at MIN_PAIR_SUPPORT


def test_deleting_a_product_deletes_its_pairs(toy):
    compute_copurchase(min_support=1)

    toy["salsa"].delete()

    assert ("chips", "salsa") not in stored_pairs() and len(stored_pairs()) == 6
