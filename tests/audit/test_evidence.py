"""A flag's evidence as one typed object: from the scorer's rows to what Flag.evidence stores and back,
the rejection signature, the percentages the flag page draws."""

from __future__ import annotations

from types import SimpleNamespace

from audit.evidence import Evidence, FlavorView

PATHS = {10: "Dairy > Cheese", 11: "Pantry > Olives", 12: "Dairy > Milk"}
IDS = [101, 102, 103]  # the scorer's rows 0, 1, 2
PRODUCTS = {pk: SimpleNamespace(pk=pk, external_id=f"P{pk}", name=f"Product {pk}") for pk in IDS}
# what Scores.evidence(i, codes) returns for one product: row indices and category ids
RAW = {
    "cluster": {"prefix": "6_19", "level": 2, "size": 8, "composition": [[10, 6], [11, 1], [99, 1]]},
    "neighbours": [[1, 0.9731, 10], [2, 0.9012, 11]],
    "suggestions": [[10, 0.81234567], [12, 0.1]],
    "signals": {"classifier": 0.91, "codes": 0.8, "knn": 1.2},
    "brand_led": True,
}


def test_the_scorers_evidence_becomes_paths_and_products_as_flags_store_it():
    evidence = Evidence.from_scores(RAW, IDS, PRODUCTS, PATHS)

    assert evidence.to_json() == {
        "cluster": {"prefix": "6_19", "level": 2, "size": 8,
                    "composition": [["Dairy > Cheese", 6], ["Pantry > Olives", 1], ["?", 1]]},
        "neighbours": [
            {"product": 102, "external_id": "P102", "name": "Product 102", "label": "Dairy > Cheese", "similarity": 0.9731},
            {"product": 103, "external_id": "P103", "name": "Product 103", "label": "Pantry > Olives", "similarity": 0.9012},
        ],
        "suggestions": [["Dairy > Cheese", 0.8123], ["Dairy > Milk", 0.1]],
        "signals": {"classifier": 0.91, "codes": 0.8, "knn": 1.2},
        "brand_led": True,
    }


def test_stored_evidence_reads_back_as_the_same_object_and_an_older_row_takes_defaults():
    evidence = Evidence.from_scores(RAW, IDS, PRODUCTS, PATHS).with_flavor(
        "discovery", FlavorView(suggested="Dairy > Cheese", confidence=0.7))

    assert Evidence.from_json(evidence.to_json()) == evidence
    assert evidence.to_json()["flavors"] == {"discovery": {"suggested": "Dairy > Cheese", "confidence": 0.7}}
    older = Evidence.from_json({"cluster": {"prefix": "6_19", "composition": [["Dairy > Cheese", 5]]},
                                "neighbours": [], "suggestions": [], "signals": {}})
    assert older.brand_led is False and older.flavors == {} and older.cluster.dominant == "Dairy > Cheese"
    assert Evidence.from_json({}) == Evidence()


def test_the_signature_is_the_one_rejected_flags_were_stored_with():
    """A rejected flag stays down while the suggestion and the cluster's dominant category stay the same:
    the hash must not change, or every rejection stored before would be raised again."""
    evidence = Evidence.from_scores(RAW, IDS, PRODUCTS, PATHS)

    assert evidence.signature(10) == "3b83101f46e82849"  # sha256("10|Dairy > Cheese")[:16]
    assert evidence.signature(12) != evidence.signature(10)
    assert Evidence().signature(10) == "4324733b48d7c547"  # sha256("10|")[:16]: no cluster members


def test_percentages_for_the_flag_page():
    evidence = Evidence.from_scores(RAW, IDS, PRODUCTS, PATHS)

    assert evidence.cluster.shares == [("Dairy > Cheese", 6, 75.0), ("Pantry > Olives", 1, 12.5), ("?", 1, 12.5)]
    assert evidence.suggestion_shares == [("Dairy > Cheese", 81.23), ("Dairy > Milk", 10.0)]
    assert evidence.signal_shares == {"classifier": 91.0, "codes": 80.0, "knn": 100.0}  # kept within 0-100
    no_size = Evidence.from_json({"cluster": {"composition": [["Dairy > Cheese", 3], ["Dairy > Milk", 1]]}})
    assert [pct for _, _, pct in no_size.cluster.shares] == [75.0, 25.0]  # out of the members shown


def test_the_migration_turns_stored_signals_round_and_empties_those_of_flags_without_a_label(db):
    """Flags raised before 0009 stored each signal's probability of the label; the page reads 1 minus it."""
    import importlib

    from django.db import connection

    from audit.models import Flag, Queue
    from catalog.models import Product
    from catalog.services import ensure_categories
    from quantizer.models import QuantizerRun

    migration = importlib.import_module("audit.migrations.0009_flag_signals_say_the_label_is_wrong")
    categories, _ = ensure_categories([("Dairy", "Cheese"), ("Pantry", "Olives")])
    cheese, olives = categories["Dairy > Cheese"], categories["Pantry > Olives"]
    run = QuantizerRun.objects.create(flavor="precision", embedding_model="m", status=QuantizerRun.Status.SUCCEEDED)
    filed = Product.objects.create(external_id="P1", name="Parmigiano", category=olives)
    loose = Product.objects.create(external_id="P2", name="Feta", category=None)
    old = {"cluster": {}, "neighbours": [], "suggestions": [], "brand_led": False}
    labelled = Flag.objects.create(product=filed, run=run, queue=Queue.MISLABEL, label=olives, suggested=cheese,
                                   confidence=0.99, priority=0.99, product_updated_at=filed.updated_at,
                                   evidence={**old, "signals": {"classifier": 0.0017, "codes": 0.25, "knn": 1.0}})
    unlabelled = Flag.objects.create(product=loose, run=run, queue=Queue.UNCATEGORIZED, label=None, suggested=cheese,
                                     confidence=1.0, priority=0.7, product_updated_at=loose.updated_at,
                                     evidence={**old, "signals": {"classifier": 0.0, "codes": 0.0}})
    with connection.cursor() as cursor:
        cursor.execute(migration.TURN_SIGNALS)
        cursor.execute(migration.EMPTY_UNLABELLED)
    labelled.refresh_from_db()
    unlabelled.refresh_from_db()

    assert labelled.evidence == {**old, "signals": {"classifier": 0.9983, "codes": 0.75, "knn": 0.0}}
    assert Evidence.from_json(labelled.evidence).signal_shares == {"classifier": 99.83, "codes": 75.0, "knn": 0.0}
    assert unlabelled.evidence == {**old, "signals": {}}
    with connection.cursor() as cursor:
        cursor.execute(migration.TURN_SIGNALS)  # the reverse
    labelled.refresh_from_db()
    assert labelled.evidence["signals"] == {"classifier": 0.0017, "codes": 0.25, "knn": 1.0}
