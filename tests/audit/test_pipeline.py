"""The whole slice through the real worker: import -> embed -> train -> assign -> evaluate -> audit."""

import csv
import io

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection

from audit.core.signals import WEIGHT_DECAY_GRID
from audit.models import Flag, Score
from catalog.demo import generate_demo_catalog, write_csv
from jobs.runner import start_job
from catalog.embeddings import neighbours_of_vector
from catalog.models import Product, ProductEmbedding
from jobs.models import Job
from catalog.services import import_catalog
from quantizer.models import QuantizerRun, SemanticId
from quantizer.selectors import products_by_prefix, related, substitutes
from quantizer.assignment import assign_products
from tests.conftest import wait_for


@pytest.fixture
def demo(tmp_path, transactional_db):
    catalog = generate_demo_catalog(n_products=600, seed=3, mislabel_rate=0.04)
    path = tmp_path / "demo.csv"
    write_csv(catalog, path)
    import_catalog(path=path)
    return catalog


def test_pipeline_job_codes_every_product_flags_planted_mislabels_and_codes_new_ones(demo, worker, admin_user, tmp_path):
    job = start_job(kind="pipeline", params={"flavors": ["precision"], "seed": 0}, user=admin_user)
    job = wait_for(lambda: Job.objects.filter(pk=job.pk, status__in=["succeeded", "failed"]).first(), timeout=600)
    assert job.status == "succeeded", job.result

    run = QuantizerRun.objects.get(flavor="precision", is_active=True)
    assert run.status == "succeeded" and run.weights and len(run.history) == run.config["epochs"]
    assert {"reconstruction", "contrastive", "total"} <= set(run.history[-1])
    for key in ("spearman", "high_sim_same_l1", "nmi_l1", "utilization_l1", "collision_rate"):
        assert key in run.metrics
    ids = SemanticId.objects.filter(run=run)
    assert ids.count() == Product.objects.count() == 600
    full_ids = [s.full_id for s in ids]
    assert len(set(full_ids)) == len(full_ids)
    # the last level keeps products of different texts off each other's codes
    assert run.metrics["collision_rate"] == 0.0 <= run.metrics["collision_rate_nearest"] < 1.0
    # near-duplicates (cosine >= 0.9) share their level-1 code
    assert run.metrics["high_sim_same_l1"] >= 0.99

    # prefix, substitute and related selectors agree with the stored codes
    first = ids.order_by("product_id").first()
    level1 = str(first.codes[0])
    under = products_by_prefix(run=run, prefix=level1)
    assert under.count() == ids.filter(codes__0=first.codes[0]).count()
    # substitutes share every level but the spread last one, identical codes first; related share fewer
    levels = len(first.codes)
    subs = substitutes(semantic_id=first)
    assert all(s.codes[: levels - 1] == first.codes[: levels - 1] for s in subs)
    assert [s.code == first.code for s in subs] == sorted((s.code == first.code for s in subs), reverse=True)
    assert len(subs) == min(20, ids.filter(code__startswith=first.code.rsplit("_", 1)[0] + "_").count() - 1)
    rel = related(semantic_id=first)
    assert rel and all(s.codes[:d] == first.codes[:d] and s.codes[d] != first.codes[d] and d < levels - 1
                       for s, d in rel)

    # the audit scored everyone, and the planted wrong labels rank above the rest
    scores = dict(Score.objects.filter(run=run).values_list("product__external_id", "confidence"))
    assert len(scores) == 600
    planted = [scores[e] for e in demo.planted]
    clean = [c for e, c in scores.items() if e not in demo.planted]
    assert np.mean(planted) > np.mean(clean) + 0.3
    # a score says whether its product was flagged
    assert (set(Score.objects.filter(run=run, flagged=True).values_list("product_id", flat=True))
            == set(Flag.objects.filter(run=run).values_list("product_id", flat=True)))
    flags = Flag.objects.filter(run=run, queue="mislabel").select_related("product", "suggested")
    flagged_planted = [f for f in flags if f.product.external_id in demo.planted]
    assert len(flagged_planted) >= len(demo.planted) / 3  # small catalog: ~7 products a leaf
    flag = flagged_planted[0]
    assert flag.evidence["cluster"]["composition"] and flag.evidence["neighbours"]
    # the signals a flag shows say how strongly each calls the label wrong: most of them, on a planted mislabel
    assert np.median([max(f.evidence["signals"].values()) for f in flagged_planted]) > 0.5
    # each flag keeps the version of its product that was scored, to the microsecond: none reads as moved since
    assert all(f.product_updated_at == f.product.updated_at for f in flags)
    right = sum(f.suggested.path == demo.true_paths[f.product.external_id] for f in flagged_planted)
    assert right >= 0.7 * len(flagged_planted)

    # the tables the run and its audit filled were analyzed at once: the pages' plans need their statistics
    tables = ["audit_flag", "audit_score", "quantizer_semanticid", "quantizer_clustersummary"]

    def analyzed() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # the counters as of now, not of this transaction
            cursor.execute("SELECT count(*) FROM pg_stat_user_tables WHERE analyze_count > 0 AND relname = ANY(%s)",
                           [tables])
            return cursor.fetchone()[0] == len(tables)

    assert wait_for(analyzed, timeout=15)

    # the exported confidence keeps the scorer's whole ranking, and the queue is ordered by it
    call_command("export_audit", str(tmp_path / "audit.csv"), stdout=io.StringIO())
    with open(tmp_path / "audit.csv", newline="") as handle:
        exported = {row["external_id"]: row["confidence"] for row in csv.DictReader(handle)}
    raw = dict(Score.objects.filter(run=run).values_list("product__external_id", "raw_score"))
    assert len(set(exported.values())) == len(set(raw.values())) > 300
    by_raw = sorted(raw, key=raw.get)
    assert [float(exported[e]) for e in by_raw] == sorted(float(exported[e]) for e in by_raw)
    report = run.audit_reports.latest("created_at")  # the classifiers' L2 weight was chosen on this catalog
    assert report.stats["classifier_weight_decay"] in WEIGHT_DECAY_GRID
    queue = [f.product.external_id for f in flags.order_by("-priority", "id")]
    assert [raw[e] for e in queue] == sorted((raw[e] for e in queue), reverse=True)


    # a new product gets its code from the active run, without retraining (cold start)
    runs_before = QuantizerRun.objects.count()
    product = Product.objects.create(external_id="NEW-1", name="Organic Whole Milk 1 l", brand="Alpine Crest",
                                     category=Product.objects.first().category)
    assert assign_products(product_ids=[product.pk], flavors=["precision"]) == 1
    semantic_id = SemanticId.objects.get(run=run, product=product)
    assert len(semantic_id.codes) == len(run.config["codebook_sizes"])
    assert semantic_id.reconstruction_error is not None and len(semantic_id.gaps) == len(semantic_id.codes)
    text = ProductEmbedding.objects.get(product=product, flavor="precision").text_hash
    sharing = SemanticId.objects.filter(run=run, code=semantic_id.code).exclude(product=product)
    assert not sharing.exclude(product__embeddings__text_hash=text).exists()
    # a copy of a coded product (same text, same embedding) takes that product's code, next token
    original = SemanticId.objects.filter(run=run).exclude(product=product).order_by("product_id").first()
    copy = Product.objects.get(pk=original.product_id)
    copy.pk, copy.external_id = None, "NEW-2"
    copy.save()
    assert assign_products(product_ids=[copy.pk], flavors=["precision"]) == 1
    twin = SemanticId.objects.get(run=run, product=copy)
    assert twin.code == original.code and twin.token != original.token
    # a near-duplicate of coded products (another pack of the same product) takes the level-1 code
    # most of its near-duplicates hold
    near = Product.objects.get(pk=original.product_id)
    near.pk, near.external_id, near.name = None, "NEW-3", near.name + " Value Pack"
    near.save()
    assert assign_products(product_ids=[near.pk], flavors=["precision"]) == 1
    vector = ProductEmbedding.objects.get(product=near, flavor="precision").embedding
    close = [pk for pk, sim in neighbours_of_vector(vector=vector, flavor="precision", k=10,
                                                      exclude_product_ids=[near.pk]) if sim >= 0.9]
    firsts = list(SemanticId.objects.filter(run=run, product_id__in=close).values_list("codes__0", flat=True))
    assert firsts, "the test needs a near-duplicate"
    assert SemanticId.objects.get(run=run, product=near).codes[0] == np.bincount(firsts).argmax()
    # ... and follows them, not its own nearest codeword: move them to another level-1 code and re-code it
    moved_to = (SemanticId.objects.get(run=run, product=near).codes[0] + 1) % run.config["codebook_sizes"][0]
    for held in SemanticId.objects.filter(run=run, product_id__in=close):
        held.codes = [moved_to, *held.codes[1:]]
        held.save(update_fields=["codes"])
    assign_products(product_ids=[near.pk], flavors=["precision"])
    assert SemanticId.objects.get(run=run, product=near).codes[0] == moved_to
    assert QuantizerRun.objects.count() == runs_before
