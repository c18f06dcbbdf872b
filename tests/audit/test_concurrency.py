"""32 reviewers work one queue at once, each thread on its own database connection: nobody gets a
flag another holds, and every decision is written exactly once."""

from __future__ import annotations

import threading
from collections import Counter

from django.db import connection

from audit.models import Decision, Flag, Queue
from audit.review.claims import claim_next_flag
from audit.review.decisions import decide_flag
from catalog.models import Product
from catalog.services import ensure_categories
from quantizer.models import QuantizerRun
from tests.conftest import make_user

REVIEWERS, FLAGS = 32, 400


def test_32_reviewers_at_once_never_share_a_flag_and_lose_no_decision(transactional_db, settings):
    settings.SEMID_SECOND_REVIEW_SHARE = 0.0
    categories, _ = ensure_categories([("Dairy", "Cheese"), ("Pantry", "Olives")])
    cheese, olives = categories["Dairy > Cheese"], categories["Pantry > Olives"]
    run = QuantizerRun.objects.create(flavor="precision", embedding_model="m", status="succeeded", is_active=True)
    products = Product.objects.bulk_create(
        Product(external_id=f"P{i}", name=f"Product {i}", category=olives) for i in range(FLAGS))
    Flag.objects.bulk_create(
        Flag(product=p, run=run, queue=Queue.MISLABEL, label=olives, suggested=cheese, confidence=0.9,
             priority=(i % 97) / 97, evidence={}, product_updated_at=p.updated_at)
        for i, p in enumerate(Product.objects.order_by("id")))
    reviewers = [make_user(f"r{i}", "reviewer", "pass-12345") for i in range(REVIEWERS)]
    held, decided, errors = {}, Counter(), []
    lock = threading.Lock()
    start = threading.Barrier(REVIEWERS)

    def work(reviewer, n):
        try:
            start.wait()
            while (flag := claim_next_flag(reviewer=reviewer, queue=Queue.MISLABEL)) is not None:
                with lock:
                    assert held.setdefault(flag.pk, reviewer.pk) == reviewer.pk, f"flag {flag.pk} claimed twice"
                decide_flag(flag=flag, reviewer=reviewer, action="accept" if n % 2 else "reject")
                with lock:
                    decided[flag.pk] += 1
        except Exception as exc:  # noqa: BLE001 - reported below, with the thread that raised it
            errors.append(f"{reviewer.username}: {exc!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(r, n)) for n, r in enumerate(reviewers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)

    assert errors == []
    assert len(held) == FLAGS and set(decided.values()) == {1}
    rows = Decision.objects.exclude(action__in=["comment", "undo"])
    assert rows.count() == FLAGS and rows.values("flag").distinct().count() == FLAGS
    assert not Flag.objects.filter(status__in=["open", "claimed"]).exists()
    assert Product.objects.filter(category=cheese).count() == rows.filter(action="accept").count()
    assert len({d.reviewer_id for d in rows}) > REVIEWERS // 2  # the work really was shared
