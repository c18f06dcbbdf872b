"""write_codes: the run's semantic IDs stored exactly as given (through COPY and one upsert), tokens kept across
rewrites, and the cluster summaries current after it."""

import numpy as np

from catalog.models import Product
from catalog.services import import_catalog
from quantizer.models import QuantizerRun, SemanticId
from quantizer.services import write_codes
from tests.quantizer.test_cluster_summaries import assert_current

CSV = "external_id,name,brand,description,category_path\n" + "".join(
    f"P{i},Product {i},,,{'dairy > milk' if i % 2 else 'snacks > chips'}\n" for i in range(6))


def test_codes_are_stored_exactly_and_a_rewrite_keeps_tokens(tmp_path, db):
    path = tmp_path / "c.csv"
    path.write_text(CSV)
    import_catalog(path=path)
    ids = np.array(list(Product.objects.order_by("id").values_list("id", flat=True)))
    run = QuantizerRun.objects.create(flavor="precision", embedding_model="test")
    codes = np.array([[1, 2], [1, 2], [1, 3], [4, 0], [1, 2], [4, 0]])
    errors = np.array([0.1, 1e-30, 3.5, 0.0, 2 / 3, 7.25], np.float32)
    gaps = np.array([[0.5, np.inf], [1e-7, 0.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]], np.float32)

    write_codes(run=run, product_ids=ids[::-1].copy(), codes=codes[::-1].copy(), errors=errors[::-1].copy(),
                gaps=gaps[::-1].copy())  # any order in, stored by product

    def rows():
        return list(SemanticId.objects.filter(run=run).order_by("product_id").values_list(
            "codes", "code", "token", "reconstruction_error", "gaps"))

    assert rows() == [(c.tolist(), "_".join(map(str, c)), t, float(e), [float(g) for g in gap])
                      for c, t, e, gap in zip(codes, [0, 1, 0, 0, 2, 1], errors, gaps)]
    assert_current(run)

    # Product 1 moves to 1_3 (takes that code's next token), product 4 stays on 1_2 with token 2; new values.
    codes[1] = [1, 3]
    write_codes(run=run, product_ids=ids, codes=codes, errors=errors * 2, gaps=gaps)
    assert [(code, token) for _, code, token, _, _ in rows()] == [
        ("1_2", 0), ("1_3", 1), ("1_3", 0), ("4_0", 0), ("1_2", 2), ("4_0", 1)]
    assert [error for *_, error, _ in rows()] == [float(e) for e in errors * 2]
    assert_current(run)
