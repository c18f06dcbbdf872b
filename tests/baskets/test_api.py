import pytest

from baskets.services import import_baskets
from tests.api.conftest import client_for
from tests.baskets.test_copurchase import TIMES, TOY, basket_file, repeated
from tests.conftest import make_user


@pytest.fixture
def toy_pairs(catalog, tmp_path):
    import_baskets(path=basket_file(tmp_path, repeated(TOY, TIMES)))
    return catalog


def test_complements_of_a_product(toy_pairs, reviewer_user):
    response = client_for(reviewer_user).get(f"/api/products/{toy_pairs['bread'].pk}/complements/")

    assert response.status_code == 200
    assert [(c["product"]["external_id"], c["orders"], round(c["lift"], 4), c["other_department"])
            for c in response.json()] == [("jam", 10, 2.0, False), ("butter", 20, 1.3333, True)]
    assert response.json()[0]["product"]["category_path"] == "breakfast > spreads"
    assert [round(c["above_chance"], 2) for c in response.json()] == [1.68, 1.37]  # by hand in test_copurchase


def test_k_and_min_support_narrow_the_list(toy_pairs, reviewer_user):
    client = client_for(reviewer_user)
    url = f"/api/products/{toy_pairs['bread'].pk}/complements/"

    assert [c["product"]["external_id"] for c in client.get(url, {"k": 1}).json()] == ["jam"]
    assert [c["product"]["external_id"] for c in client.get(url, {"min_support": 11}).json()] == ["butter"]
    assert client.get(url, {"k": 0}).status_code == 400


def test_unknown_product_is_404_and_a_user_without_a_role_403(toy_pairs, reviewer_user):
    assert client_for(reviewer_user).get("/api/products/999999/complements/").status_code == 404
    assert client_for(reviewer_user).get("/api/products/abc/complements/").status_code == 404
    nobody = make_user("nora", "reviewer", "x-pass-123456")
    nobody.groups.clear()
    assert client_for(nobody).get(f"/api/products/{toy_pairs['bread'].pk}/complements/").status_code == 403
