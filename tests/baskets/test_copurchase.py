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


# The toy orders are too few for any pair to be surely above chance; each of them 10 times, the same lifts are.
TIMES = 10


def repeated(orders: dict[int, list[str]], times: int) -> dict[int, list[str]]:
    return {copy * 100 + order: products for copy in range(times) for order, products in orders.items()}


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


@pytest.fixture
def toy_often(catalog, tmp_path):
    """The toy orders, each TIMES times, pairs at the import's minimum support."""
    import_baskets(path=basket_file(tmp_path, repeated(TOY, TIMES)))
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


def test_above_chance_is_the_lift_bound_over_the_lift_of_chance_with_these_order_sizes(toy):
    from baskets.core.copurchase import chance_lift, lift_bound

    compute_copurchase(min_support=1)

    # order sizes 3, 2, 2, 3, 2, 3: N = 6, L = 15, sum s(s - 1) = 24; chance 6 * 24 / (15 * 14) = 0.6857
    assert chance_lift([3, 2, 2, 3, 2, 3]) == pytest.approx(0.685714, abs=1e-6)
    # chips and salsa: lift 3 in 2 orders, at least 3 * (1 - 1/18 - 1.645 / (3 sqrt 2))^3 = 0.5176: 0.7549 x chance
    pair = CoPurchase.objects.get(product_a=min(toy["chips"].pk, toy["salsa"].pk),
                                  product_b=max(toy["chips"].pk, toy["salsa"].pk))
    assert lift_bound(3.0, 2) == pytest.approx(0.517629, abs=1e-6)
    assert pair.above_chance == pytest.approx(0.517629 / 0.685714, abs=1e-5)
    assert complements(product=toy["chips"]) == []  # two orders do not make it surely more than chance


def test_complements_are_surely_above_chance_the_surest_first(toy_often):
    def names(external_id, **options):
        return [c.product.external_id for c in complements(product=toy_often[external_id], **options)]

    # each toy order 10 times: chance 0.644; bread with jam (lift 2, 10 orders) 1.68 x chance at least, with butter
    # (lift 4/3, 20 orders) 1.37 x; with milk lift 1: not a complement
    assert names("bread") == ["jam", "butter"]
    assert names("butter") == ["jam", "bread"]
    assert names("jam") == ["bread", "butter"]  # same lift and orders: a fixed order
    assert names("milk") == []  # with nothing above chance
    assert names("bread", min_support=11) == ["butter"]  # jam shares 10 orders with it
    assert names("bread", k=1) == ["jam"]


def test_products_that_meet_only_in_large_orders_are_not_complements(catalog, tmp_path):
    # 20 orders hold all six products, and each product is bought alone 20 times: every pair has lift
    # 20 * 140 / (40 * 40) = 1.75, but in orders of these sizes (20 of 6, 120 of 1) chance is 1.464, and 20 orders
    # make it surely no more than 1.16: no product prefers another.
    everything = ["milk", "bread", "butter", "jam", "chips", "salsa"]
    orders = {n: everything for n in range(20)} | {100 + n: [everything[n % 6]] for n in range(120)}
    import_baskets(path=basket_file(tmp_path, orders))

    pair = CoPurchase.objects.first()
    assert (CoPurchase.objects.count(), pair.orders, pair.lift) == (15, 20, pytest.approx(1.75))
    assert pair.above_chance == pytest.approx(1.75 * 0.662675 / 1.464435, abs=1e-5)  # 0.79
    assert all(complements(product=product) == [] for product in catalog.values())


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


def test_a_complement_carries_its_category_department_and_shared_semantic_id_prefix(toy_often):
    from quantizer.models import QuantizerRun, SemanticId

    toy = toy_often
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
    assert (salsa.orders, salsa.lift) == (20, pytest.approx(3.0))
    assert [(s.flavor, s.prefix, s.levels) for s in salsa.shared] == [("discovery", "7_7_7", 3), ("precision", "1_2", 2)]

    jam, butter = complements(product=toy["bread"])
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
