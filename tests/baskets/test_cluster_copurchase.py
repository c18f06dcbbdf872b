"""Clusters bought together: counts and lift of semantic-ID clusters on the toy orders, checked by hand; kept
current by the basket import and by a run's activation (a job on the real worker); the cluster tree's panel."""

import pytest

from baskets.models import ClusterCoPurchase
from baskets.services import MIN_PAIR_SUPPORT, compute_cluster_copurchase, import_baskets
from tests.baskets.test_copurchase import TIMES, TOY, basket_file, repeated

# Three levels of codes: level 1 = the shelf (dairy 1, breakfast 2, snacks 3); chips and salsa share "3_1".
CODES = {"milk": [1, 1, 0], "butter": [1, 2, 0], "bread": [2, 1, 0], "jam": [2, 2, 0],
         "chips": [3, 1, 0], "salsa": [3, 1, 1]}
# By hand, over the six orders (all coded, N = 6). A cluster is in an order when one of its products is.
#   level 1: "1" in orders 1,2,3,4,6 (5), "2" in 1,2,4 (3), "3" in 5,6 (2).
#     1+2: orders 1,2,4 -> 3 · 6 / (5 · 3) = 1.2;  1+3: order 6 -> 6 / (5 · 2) = 0.6, below chance: left out.
#   level 2: "1_1" (milk) 4 orders, "1_2" (butter) 3, "2_1" (bread) 3, "2_2" (jam) 1, "3_1" (chips, salsa) 2.
#     1_2+2_1: orders 1,4 -> 2 · 6 / 9 = 4/3;  1_2+2_2 and 2_1+2_2: order 4 -> 6 / 3 = 2;
#     1_1+1_2 and 1_1+2_1: 2 · 6 / 12 = 1, chance: left out;  1_1+3_1: 6 / 8 = 0.75: left out.
PAIRS = {  # (prefix, other): (orders, lift), each pair from both sides
    ("1", "2"): (3, 1.2), ("2", "1"): (3, 1.2),
    ("1_2", "2_1"): (2, 4 / 3), ("2_1", "1_2"): (2, 4 / 3),
    ("1_2", "2_2"): (1, 2.0), ("2_2", "1_2"): (1, 2.0),
    ("2_1", "2_2"): (1, 2.0), ("2_2", "2_1"): (1, 2.0),
}
# Each toy order TIMES (10) times for the pairs to be surely above chance (the lifts stay). A level's chance: N sum
# k(k - 1) / (K (K - 1)) over the clusters k each order holds: level 1 k = 2,2,1,2,1,2 a copy: 60 * 80 / (100 * 99)
# = 0.485; level 2 k = 3,2,2,3,1,2: 60 * 180 / (130 * 129) = 0.644. Every pair above is surely above it: 1+2 (30
# orders, lift 1.2) at least 0.864, 1_2+2_1 (20, 4/3) 0.884, 1_2+2_2 (10, 2) 1.085; the surest first (lift_bound;
# then lift, orders, other). With every order MIN_PAIR_SUPPORT times, the same.
RANKS = {"1": ["2"], "2": ["1"], "1_2": ["2_2", "2_1"], "2_1": ["2_2", "1_2"], "2_2": ["1_2", "2_1"]}


def expected(times: int) -> dict:
    """{(prefix, rank): (other, orders, lift)} for the toy orders, each repeated `times` times."""
    return {(prefix, rank): (other, PAIRS[prefix, other][0] * times, pytest.approx(PAIRS[prefix, other][1]))
            for prefix, others in RANKS.items() for rank, other in enumerate(others, start=1)}


def test_a_levels_chance_and_the_bounds_that_rank_the_toy_clusters_are_the_ones_worked_out_by_hand():
    from baskets.core.copurchase import chance_lift, lift_bound

    assert chance_lift([2, 2, 1, 2, 1, 2] * TIMES) == pytest.approx(60 * 80 / (100 * 99))
    assert chance_lift([3, 2, 2, 3, 1, 2] * TIMES) == pytest.approx(60 * 180 / (130 * 129))
    assert [lift_bound(1.2, 30), lift_bound(4 / 3, 20), lift_bound(2.0, 10)] == pytest.approx(
        [0.864, 0.884, 1.085], abs=1e-3)


def coded_run(catalog, *, active=True):
    from quantizer.models import QuantizerRun, SemanticId

    run = QuantizerRun.objects.create(flavor="precision", embedding_model="test", is_active=active,
                                      status=QuantizerRun.Status.SUCCEEDED)
    for external_id, codes in CODES.items():
        SemanticId.objects.create(run=run, product=catalog[external_id], codes=codes, code="_".join(map(str, codes)))
    return run


def stored(run) -> dict:
    return {(r.prefix, r.rank): (r.other, r.orders, pytest.approx(r.lift))
            for r in ClusterCoPurchase.objects.filter(run=run)}


def test_cluster_counts_and_lift_match_the_hand_computed_values(catalog, tmp_path):
    import_baskets(path=basket_file(tmp_path, repeated(TOY, TIMES)))
    run = coded_run(catalog)

    assert compute_cluster_copurchase(run=run) == len(PAIRS)

    assert stored(run) == expected(TIMES)
    assert set(ClusterCoPurchase.objects.filter(run=run).values_list("prefix", "level")) == {
        ("1", 1), ("2", 1), ("1_2", 2), ("2_1", 2), ("2_2", 2)}  # the last level (single products) has none
    assert compute_cluster_copurchase(run=run, min_support=31) == 0  # no pair of clusters in 31 orders
    assert not ClusterCoPurchase.objects.filter(run=run).exists()


def test_clusters_that_meet_only_in_large_orders_are_not_bought_with_each_other(catalog, tmp_path):
    # 10 orders hold every product, each product is bought alone 20 times (N = 130). Level 1: "1" (milk, butter)
    # and "2" (bread, jam) are in 50 orders each, 10 together: lift 10 * 130 / (50 * 50) = 0.52. Level 2: milk's
    # "1_1" and butter's "1_2" in 30 each, 10 together: lift 10 * 130 / (30 * 30) = 1.44, but in orders of these
    # sizes (10 of 5 clusters, 120 of 1) chance is 130 * 200 / (170 * 169) = 0.905, and 10 orders make 1.44 surely
    # no more than 0.783.
    everything = ["milk", "bread", "butter", "jam", "chips", "salsa"]
    orders = {n: everything for n in range(10)} | {100 + n: [everything[n % 6]] for n in range(120)}
    import_baskets(path=basket_file(tmp_path, orders))
    run = coded_run(catalog)

    assert compute_cluster_copurchase(run=run) == 0


def test_a_basket_import_recomputes_the_active_runs_clusters(catalog, tmp_path):
    active, inactive = coded_run(catalog), coded_run(catalog, active=False)
    import_baskets(path=basket_file(tmp_path, repeated(TOY, MIN_PAIR_SUPPORT)))  # the same lifts

    assert stored(active) == expected(MIN_PAIR_SUPPORT)
    assert not ClusterCoPurchase.objects.filter(run=inactive).exists()


def test_activating_a_run_computes_its_clusters_on_the_worker(worker, catalog, tmp_path, client, admin_user):
    from jobs.models import Job
    from quantizer.services import activate_run
    from tests.conftest import wait_for

    import_baskets(path=basket_file(tmp_path, TOY))
    run = coded_run(catalog, active=False)
    assert not ClusterCoPurchase.objects.filter(run=run).exists()

    activate_run(run)

    job = wait_for(lambda: Job.objects.filter(kind="cluster_copurchase", status="succeeded").first())
    assert job.params == {"run": run.pk} and job.result == {"run": run.pk, "rows": 0}  # toy orders: under support
    client.force_login(admin_user)  # the job page names the kind as people do
    assert f"Clusters bought together job #{job.pk}" in client.get(f"/jobs/{job.pk}/").content.decode()


def test_the_cluster_tree_shows_the_clusters_bought_with_a_cluster(client, reviewer_user, catalog, tmp_path):
    run = coded_run(catalog)
    client.force_login(reviewer_user)
    assert "Bought with" not in client.get("/clusters/?prefix=1_2").content.decode()  # no basket yet

    import_baskets(path=basket_file(tmp_path, repeated(TOY, TIMES)))
    ClusterCoPurchase.objects.filter(run=run).delete()
    assert "Not computed yet" in client.get("/clusters/?prefix=1_2").content.decode()

    compute_cluster_copurchase(run=run)
    html = client.get("/clusters/?prefix=1_2").content.decode()
    assert 'data-testid="bought-with"' in html
    rows = html.split('data-testid="bought-with-cluster"')[1:]
    assert [row.split('data-prefix="')[1].split('"')[0] for row in rows] == ["2_2", "2_1"]
    assert "2.0×" in rows[0] and "1.3×" in rows[1] and "breakfast" in rows[0]
    assert "No cluster of this level" in client.get("/clusters/?prefix=3").content.decode()
    for path in ("/clusters/", "/clusters/?prefix=1_2_0"):  # the root, and below the levels that have it
        assert 'data-testid="bought-with"' not in client.get(path).content.decode()


@pytest.mark.browser
def test_a_reviewer_follows_a_cluster_bought_with_another_in_the_tree(page, reviewer_user, catalog, tmp_path):
    from tests.ui.conftest import login, screenshot

    import_baskets(path=basket_file(tmp_path, repeated(TOY, TIMES)))
    run = coded_run(catalog)
    compute_cluster_copurchase(run=run)

    login(page, "rita", "review-pass-123")
    page.goto("/clusters/?flavor=precision&prefix=1")
    panel = page.get_by_test_id("bought-with")
    assert panel.get_by_test_id("bought-with-cluster").count() == 1
    screenshot(page, "clusters-bought-with")
    panel.get_by_role("link", name="2", exact=True).click()
    page.wait_for_url("**prefix=2")
    assert page.get_by_test_id("bought-with").get_by_test_id("bought-with-cluster").get_attribute("data-prefix") == "1"
