"""The review workflow through the API: claims, decisions, undo, bulk, stale flags, leases, re-raising."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from audit.evidence import Evidence
from audit.models import Decision, Flag
from audit.runs import _write_flags
from catalog.models import Product
from catalog.services import move_product
from tests.api.conftest import client_for, evidence_for


def scored(dominant: str) -> Evidence:
    """Evidence as an audit hands it to _write_flags: the cluster mostly filed under `dominant`."""
    return Evidence.from_json(evidence_for(dominant))


def claim(client, **body):
    return client.post("/api/flags/claim/", body, format="json")


def decide(client, flag, **body):
    return client.post(f"/api/flags/{flag.pk}/decide/", body, format="json")


def test_two_reviewers_get_different_flags_and_an_empty_queue_answers_204(catalog, reviewer_user, second_reviewer,
                                                                           admin_user):
    first = claim(client_for(reviewer_user))
    second = claim(client_for(second_reviewer))

    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == catalog.flags["parmesan"].pk  # the higher confidence first
    assert second.json()["id"] == catalog.flags["kalamata"].pk
    assert first.json()["claimed_by"] == "rita" and first.json()["status"] == "claimed"
    assert claim(client_for(reviewer_user)).json()["id"] == first.json()["id"]  # you keep what you hold
    assert claim(client_for(admin_user)).status_code == 204


def test_claim_filters_and_bad_queue(catalog, reviewer_user):
    client = client_for(reviewer_user)
    assert claim(client, min_confidence=0.95).status_code == 204
    assert claim(client, department="Dairy").json()["id"] == catalog.flags["kalamata"].pk
    response = claim(client, queue="nope")
    assert response.status_code == 400 and "queue" in response.json()


def test_claiming_a_flag_held_by_another_reviewer_is_a_conflict(catalog, reviewer_user, second_reviewer):
    flag = catalog.flags["parmesan"]
    assert client_for(reviewer_user).post(f"/api/flags/{flag.pk}/claim/").status_code == 200

    response = client_for(second_reviewer).post(f"/api/flags/{flag.pk}/claim/")

    assert response.status_code == 409
    assert "claimed by rita" in response.json()["detail"]


def test_an_expired_lease_lets_another_reviewer_claim_the_flag(catalog, reviewer_user, second_reviewer):
    flag = catalog.flags["parmesan"]
    assert client_for(reviewer_user).post(f"/api/flags/{flag.pk}/claim/").status_code == 200
    Flag.objects.filter(pk=flag.pk).update(claim_expires_at=timezone.now() - timedelta(seconds=1))

    response = claim(client_for(second_reviewer))

    assert response.status_code == 200 and response.json()["id"] == flag.pk
    assert response.json()["claimed_by"] == "rob"
    # the first reviewer's decision now fails: the lease went to someone else
    assert decide(client_for(reviewer_user), flag, action="accept").status_code == 409


def test_accept_moves_the_product_and_records_the_decision_and_history(catalog, reviewer_user):
    client = client_for(reviewer_user)
    flag, product = catalog.flags["parmesan"], catalog.products["parmesan"]
    claim(client)

    response = decide(client, flag, action="accept", note="clearly cheese")

    assert response.status_code == 201
    body = response.json()
    assert body["action"] == "accept" and body["flag_status"] == "accepted" and body["reviewer"] == "rita"
    assert body["from_category"]["path"] == "Pantry > Olives"
    assert body["to_category"]["path"] == "Dairy > Cheese"
    product.refresh_from_db()
    assert product.category.path == "Dairy > Cheese"
    assert Decision.objects.get(pk=body["id"]).note == "clearly cheese"
    event = product.category_events.order_by("-pgh_id").first()
    assert event.pgh_label == "category_changed" and event.category_id == product.category_id
    assert event.pgh_context.metadata["source"] == "review:accept"
    listed = client.get(f"/api/decisions/?product={product.pk}").json()
    assert [d["id"] for d in listed["results"]] == [body["id"]]


def test_reassign_moves_the_product_to_the_given_category(catalog, reviewer_user):
    client = client_for(reviewer_user)
    flag, product = catalog.flags["parmesan"], catalog.products["parmesan"]
    milk = catalog.categories["Dairy > Milk"]
    claim(client)

    assert decide(client, flag, action="reassign").status_code == 400  # no category given
    response = decide(client, flag, action="reassign", category=milk.pk)

    assert response.status_code == 201 and response.json()["flag_status"] == "reassigned"
    product.refresh_from_db()
    assert product.category == milk


def test_reject_leaves_the_category_and_undo_restores_an_accept(catalog, reviewer_user, second_reviewer):
    client = client_for(reviewer_user)
    parmesan, kalamata = catalog.products["parmesan"], catalog.products["kalamata"]
    claim(client)
    assert decide(client, catalog.flags["parmesan"], action="reject").status_code == 201
    parmesan.refresh_from_db()
    assert parmesan.category.path == "Pantry > Olives"
    assert Flag.objects.get(pk=catalog.flags["parmesan"].pk).status == "rejected"

    claim(client)
    assert decide(client, catalog.flags["kalamata"], action="accept").status_code == 201
    kalamata.refresh_from_db()
    assert kalamata.category.path == "Pantry > Olives"

    response = client.post("/api/flags/undo/", {"count": 1}, format="json")

    assert response.status_code == 200
    [undo] = response.json()
    assert undo["action"] == "undo" and undo["to_category"]["path"] == "Dairy > Cheese"
    kalamata.refresh_from_db()
    assert kalamata.category.path == "Dairy > Cheese"
    flag = Flag.objects.get(pk=catalog.flags["kalamata"].pk)
    assert flag.status == "claimed" and flag.claimed_by == reviewer_user
    # another reviewer's undo touches nothing of rita's
    assert client_for(second_reviewer).post("/api/flags/undo/", {"count": 5}, format="json").json() == []
    assert client.post("/api/flags/undo/", {"count": 0}, format="json").status_code == 400


def test_bulk_accept_as_admin(catalog, admin_user):
    ids = [f.pk for f in catalog.flags.values()]

    response = client_for(admin_user).post("/api/flags/bulk/", {"ids": ids, "action": "accept"}, format="json")

    assert response.status_code == 200
    assert response.json()["decided"] == 2 and response.json()["skipped"] == []
    assert dict(Product.objects.filter(external_id__in=["P1", "P2"]).values_list("external_id", "category__path")) == {
        "P1": "Dairy > Cheese", "P2": "Pantry > Olives"}
    assert set(Flag.objects.values_list("status", flat=True)) == {"accepted"}


def test_bulk_refuses_decided_and_unknown_flags_without_changing_anything(catalog, admin_user):
    client = client_for(admin_user)
    Flag.objects.filter(pk=catalog.flags["kalamata"].pk).update(status="rejected")
    ids = [f.pk for f in catalog.flags.values()]

    decided = client.post("/api/flags/bulk/", {"ids": ids, "action": "accept"}, format="json")
    unknown = client.post("/api/flags/bulk/", {"ids": [999999], "action": "accept"}, format="json")
    bad_action = client.post("/api/flags/bulk/", {"ids": ids, "action": "reassign"}, format="json")

    assert decided.status_code == 409 and "already decided" in str(decided.json())
    assert unknown.status_code == 404 and "999999" in str(unknown.json())
    assert bad_action.status_code == 400
    assert not Decision.objects.exists()
    assert Flag.objects.get(pk=catalog.flags["parmesan"].pk).status == "open"


def test_accepting_a_flag_whose_product_moved_since_scoring_is_a_conflict_and_marks_it_stale(catalog, reviewer_user,
                                                                                           admin_user):
    client = client_for(reviewer_user)
    flag, product = catalog.flags["parmesan"], catalog.products["parmesan"]
    claim(client)
    move_product(product=product, category=catalog.categories["Dairy > Milk"], user=admin_user)

    response = decide(client, flag, action="accept")

    assert response.status_code == 409
    assert "changed since it was scored" in response.json()["detail"]
    assert Flag.objects.get(pk=flag.pk).status == "stale"
    product.refresh_from_db()
    assert product.category.path == "Dairy > Milk"
    assert not Decision.objects.exists()
    stale = client.get("/api/flags/?queue=stale").json()
    assert [f["id"] for f in stale["results"]] == [flag.pk]


def test_a_rejected_flag_is_not_re_raised_unless_the_evidence_changes(catalog, reviewer_user):
    client = client_for(reviewer_user)
    flag, product = catalog.flags["parmesan"], catalog.products["parmesan"]
    cheese, milk = catalog.categories["Dairy > Cheese"], catalog.categories["Dairy > Milk"]
    claim(client)
    assert decide(client, flag, action="reject", note="it is sold with the olives").status_code == 201
    product.refresh_from_db()

    stats = _write_flags(run=catalog.run, flagged=[(product, cheese.pk, 0.95, scored(cheese.path), False, 0.9)])

    assert stats["suppressed"] == 1
    assert not Flag.objects.filter(product=product, status__in=Flag.OPEN_STATES).exists()

    stats = _write_flags(run=catalog.run, flagged=[(product, milk.pk, 0.95, scored(milk.path), False, 0.9)])

    assert stats["suppressed"] == 0
    reopened = Flag.objects.get(product=product, status__in=Flag.OPEN_STATES)
    assert reopened.suggested == milk


def test_flag_list_filters(catalog, reviewer_user):
    client = client_for(reviewer_user)

    def ids(query):
        response = client.get(f"/api/flags/?{query}")
        assert response.status_code == 200, response.content
        return [f["id"] for f in response.json()["results"]]

    parmesan, kalamata = catalog.flags["parmesan"].pk, catalog.flags["kalamata"].pk
    assert ids("") == [parmesan, kalamata]
    assert ids("queue=mislabel&status=open") == [parmesan, kalamata]
    assert ids("queue=uncategorized") == []
    assert ids("min_confidence=0.85") == [parmesan]
    assert ids("max_confidence=0.85") == [kalamata]
    assert ids("department=Pantry") == [parmesan]
    assert ids("flavor=precision") == [parmesan, kalamata]
    assert ids("flavor=discovery") == []
    assert ids(f"run={catalog.run.pk}") == [parmesan, kalamata]
    assert client.get("/api/flags/?min_confidence=high").status_code == 400
    detail = client.get(f"/api/flags/{parmesan}/").json()
    assert detail["label"]["path"] == "Pantry > Olives" and detail["suggested"]["path"] == "Dairy > Cheese"
    assert detail["evidence"]["cluster"]["composition"][0][0] == "Dairy > Cheese"


def test_queue_figures(catalog, reviewer_user):
    client = client_for(reviewer_user)
    claim(client)
    decide(client, catalog.flags["parmesan"], action="reject")

    body = client.get("/api/queues/").json()

    by_queue = {q["queue"]: q for q in body["queues"]}
    assert by_queue["mislabel"]["open"] == 1 and by_queue["mislabel"]["decided_today"] == 1
    assert body["second_review"] == {"reviewed": 0, "agreement": None}
    assert client.get("/api/queues/?department=Dairy").json()["queues"][0]["open"] == 1


def test_a_queue_is_the_same_flags_in_its_figures_its_claims_and_the_list(catalog, reviewer_user, second_reviewer,
                                                                          settings):
    """One definition (Flag.objects.in_queue): a decision due a second review leaves the mislabel queue's count
    and enters the second-review queue, which its first reviewer cannot claim from; the list API keeps a
    queue's decided flags reachable through a status filter."""
    settings.SEMID_SECOND_REVIEW_SHARE = 1.0
    rita, rob = client_for(reviewer_user), client_for(second_reviewer)
    parmesan = catalog.flags["parmesan"]
    assert rita.post(f"/api/flags/{parmesan.pk}/claim/").status_code == 200
    assert decide(rita, parmesan, action="reject").status_code == 201

    def listed(query):
        return [f["id"] for f in rita.get(f"/api/flags/?{query}").json()["results"]]

    figures = {q["queue"]: q["open"] for q in rita.get("/api/queues/").json()["queues"]}
    assert figures == {"mislabel": 1, "uncategorized": 0, "stale": 0, "second": 1}
    assert listed("queue=second") == [parmesan.pk]
    assert listed("queue=mislabel&status=rejected") == [parmesan.pk]
    assert claim(rita, queue="second").status_code == 204  # her own decision
    assert claim(rob, queue="second").json()["id"] == parmesan.pk


def test_flag_page_explains_a_brand_led_flag(catalog, reviewer_user):
    from django.test import Client
    from django.urls import reverse

    flag = catalog.flags["parmesan"]
    client = Client()
    client.force_login(reviewer_user)
    assert 'data-testid="brand-led"' not in client.get(reverse("flag", args=[flag.pk])).content.decode()
    flag.evidence = {**flag.evidence, "brand_led": True}
    flag.save(update_fields=["evidence"])
    page = client.get(reverse("flag", args=[flag.pk])).content.decode()
    assert 'data-testid="brand-led"' in page and "Whole brand line?" in page


def test_reimporting_an_older_file_keeps_an_accepted_fix_and_lists_the_conflict(catalog, reviewer_user, tmp_path):
    from catalog.services import import_catalog

    flag = catalog.flags["parmesan"]
    client = client_for(reviewer_user)
    assert client.post(f"/api/flags/{flag.pk}/claim/").status_code == 200
    assert decide(client, flag, action="accept").status_code == 201
    older = tmp_path / "older.csv"  # the file as it was before the review: Parmesan under olives
    older.write_text("external_id,name,brand,description,category_path\n"
                     "P1,Parmigiano Reggiano 200 g,Zanetti,,Pantry > Olives\n"
                     "P2,Kalamata Olives 300 g,Divina,,Dairy > Cheese\n")

    result = import_catalog(path=older)

    parmesan = Product.objects.get(external_id="P1")
    assert parmesan.category.path == "Dairy > Cheese"
    assert Flag.objects.get(pk=flag.pk).status == "accepted"
    assert [(c.row, c.external_id, c.current_path, c.file_path, c.changed_by) for c in result.conflicts] == [
        (2, "P1", "Dairy > Cheese", "Pantry > Olives", "review:accept")]
    assert (result.updated, result.unchanged) == (0, 1)

    forced = import_catalog(path=older, overwrite=True)

    assert forced.conflicts == [] and forced.updated == 1
    assert Product.objects.get(external_id="P1").category.path == "Pantry > Olives"


def test_page_size_asks_for_a_smaller_page(catalog, reviewer_user):
    client = client_for(reviewer_user)

    page = client.get("/api/flags/?page_size=1").json()

    assert page["count"] == 2 and len(page["results"]) == 1 and page["next"]
    assert len(client.get("/api/flags/").json()["results"]) == 2
    assert len(client.get("/api/products/?page_size=100000").json()["results"]) == 3  # capped, not refused


def test_undo_leaves_a_second_reviewers_review_alone(catalog, reviewer_user, second_reviewer, settings):
    settings.SEMID_SECOND_REVIEW_SHARE = 1.0  # every decision gets a second review
    rita, rob = client_for(reviewer_user), client_for(second_reviewer)
    flag = catalog.flags["parmesan"]
    assert rita.post(f"/api/flags/{flag.pk}/claim/").status_code == 200
    assert decide(rita, flag, action="accept").status_code == 201
    assert claim(rob, queue="second").json()["id"] == flag.pk

    under_review = rita.post("/api/flags/undo/", {"count": 1}, format="json")  # rob holds it for his review

    assert under_review.status_code == 409 and "rob is second-reviewing" in under_review.json()["detail"]
    assert decide(rob, flag, action="accept").status_code == 201  # his decide still goes through

    after = rita.post("/api/flags/undo/", {"count": 1}, format="json")

    assert after.status_code == 409 and "rob has second-reviewed this decision" in after.json()["detail"]
    flag.refresh_from_db()
    assert flag.status == "accepted" and flag.second_review_agrees is True and flag.needs_second_review
    assert Product.objects.get(pk=flag.product_id).category.path == "Dairy > Cheese"


def second_flavor_run():
    from quantizer.models import QuantizerRun

    return QuantizerRun.objects.create(flavor="discovery", embedding_model="m", status="succeeded", is_active=True)


def test_both_flavors_flagging_a_product_make_one_flag_with_both_views(catalog):
    parmesan, cheese = catalog.products["parmesan"], catalog.categories["Dairy > Cheese"]
    discovery = second_flavor_run()

    stats = _write_flags(run=discovery, flagged=[(parmesan, cheese.pk, 0.7, scored(cheese.path), False, 0.8)])

    assert stats["created"] == 0 and stats["merged"] == 1
    [flag] = Flag.objects.filter(product=parmesan)
    assert flag.pk == catalog.flags["parmesan"].pk
    assert flag.evidence["flavors"] == {"discovery": {"suggested": "Dairy > Cheese", "confidence": 0.7}}


def test_a_decision_closes_the_products_other_flag_and_undo_leaves_one_decidable_flag(catalog, reviewer_user):
    parmesan, cheese = catalog.products["parmesan"], catalog.categories["Dairy > Cheese"]
    first = catalog.flags["parmesan"]
    twin = Flag.objects.create(  # raised by the other flavor before flags were merged
        product=parmesan, run=second_flavor_run(), label=parmesan.category, suggested=cheese, confidence=0.6,
        priority=0.6, evidence=evidence_for(cheese.path), product_updated_at=parmesan.updated_at)
    client = client_for(reviewer_user)
    assert client.post(f"/api/flags/{first.pk}/claim/").status_code == 200

    assert decide(client, first, action="accept").status_code == 201

    assert not Flag.objects.filter(pk=twin.pk).exists()  # no stale twin left in the queue
    assert client.post("/api/flags/undo/", {"count": 1}, format="json").status_code == 200
    [flag] = Flag.objects.filter(product=parmesan)
    assert flag.pk == first.pk and flag.status == "claimed"
    assert Product.objects.get(pk=parmesan.pk).category == flag.label
    assert decide(client, flag, action="accept").status_code == 201  # decidable again, not "stale"


def test_a_deferred_flag_stays_deferred_through_the_next_audit(catalog, reviewer_user):
    flag, cheese = catalog.flags["parmesan"], catalog.categories["Dairy > Cheese"]
    client = client_for(reviewer_user)
    assert client.post(f"/api/flags/{flag.pk}/claim/").status_code == 200
    assert decide(client, flag, action="defer", note="ask the buyer").status_code == 201

    stats = _write_flags(run=catalog.run, flagged=[(flag.product, cheese.pk, 0.93, scored(cheese.path), False, 0.9)])

    assert stats["refreshed"] == 1
    flag.refresh_from_db()
    assert flag.status == "deferred" and flag.confidence == 0.93
