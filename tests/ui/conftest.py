"""Browser helpers (the browser fixtures live in tests/conftest.py: one Chromium for the whole session) and
a small review catalog built without training (generated products, a made-up active run, hand-shaped flags)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ARTIFACTS, make_user

SCREENSHOTS = ARTIFACTS / "screenshots"


def login(page, username: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def make_reviewer(username: str, password: str = "review-pass-123"):
    return make_user(username, "reviewer", password)


def import_demo_catalog(tmp_path: Path, n_products: int = 60, mislabel_rate: float = 0.1):
    from catalog.demo import generate_demo_catalog, leaf_paths, write_csv
    from catalog.services import ensure_categories, import_catalog

    demo = generate_demo_catalog(n_products=n_products, seed=0, mislabel_rate=mislabel_rate)
    ensure_categories(tuple(path.split(" > ")) for path in leaf_paths())  # every leaf, even if no product has it
    import_catalog(path=write_csv(demo, tmp_path / "demo.csv"))
    return demo


def build_review_data(tmp_path: Path, *, n_products: int = 60, n_flags: int = 8) -> dict:
    """Products, an active precision run whose codes follow each product's true category, and flags
    on the planted (wrong-label) products first, shaped as audit.runs writes them."""
    from audit.models import Flag
    from catalog.models import Category, Product
    from quantizer.models import QuantizerRun, SemanticId

    demo = import_demo_catalog(tmp_path, n_products=n_products)
    categories = {c.path: c for c in Category.objects.all()}
    products = {p.external_id: p for p in Product.objects.select_related("category")}
    run = QuantizerRun.objects.create(
        flavor="precision", embedding_model="test", status=QuantizerRun.Status.SUCCEEDED, is_active=True,
        progress=1.0, message="done", n_products=len(products), config={"codebook_sizes": [16, 16, 16, 16]},
        metrics={"spearman": 0.61, "high_sim_same_l1": 0.83, "nmi_l1": 0.55, "utilization_l1": 0.5,
                 "utilization_l2": 0.7, "utilization_l3": 0.4, "utilization_l4": 0.2, "collision_rate": 0.03},
        history=[{"epoch": e, "total": 1.0 / e, "reconstruction": 0.8 / e} for e in range(1, 9)],
    )
    leaves = sorted({p for p in demo.true_paths.values()})
    departments = sorted({p.split(" > ")[0] for p in leaves})
    aisles = sorted({" > ".join(p.split(" > ")[:2]) for p in leaves})
    rows, codes_of, tokens = [], {}, {}
    for n, (external_id, true_path) in enumerate(sorted(demo.true_paths.items())):
        codes = [departments.index(true_path.split(" > ")[0]) % 16, aisles.index(" > ".join(true_path.split(" > ")[:2])) % 16,
                 leaves.index(true_path) % 16, n % 3]
        codes_of[external_id] = codes
        code = "_".join(map(str, codes))
        tokens[code] = tokens.get(code, -1) + 1  # the disambiguation token keeps full ids unique
        rows.append(SemanticId(run=run, product=products[external_id], codes=codes, code=code, token=tokens[code]))
    SemanticId.objects.bulk_create(rows)
    planted = sorted(demo.planted)
    others = [e for e in sorted(demo.true_paths) if e not in demo.planted]
    chosen = (planted + others)[:n_flags]
    flags = []
    for rank, external_id in enumerate(chosen):
        product = products[external_id]
        true_path = demo.true_paths[external_id]
        suggested = categories[true_path] if external_id in demo.planted else categories[leaves[(leaves.index(true_path) + 1) % len(leaves)]]
        prefix = codes_of[external_id][:2]
        members = [e for e, c in codes_of.items() if c[:2] == prefix]
        composition = {}
        for e in members:
            composition[products[e].category.path] = composition.get(products[e].category.path, 0) + 1
        evidence = {
            "cluster": {"prefix": "_".join(map(str, prefix)), "level": 2, "size": len(members),
                        "composition": sorted(([p, n] for p, n in composition.items()), key=lambda x: -x[1])},
            "neighbours": [{"product": products[e].pk, "external_id": e, "name": products[e].name,
                            "label": products[e].category.path, "similarity": round(0.95 - 0.02 * i, 3)}
                           for i, e in enumerate(m for m in members if m != external_id)][:6],
            # as the scorer writes them: the most probable categories other than the label
            "suggestions": [[suggested.path, 0.81]] + [
                [p, 0.08 - 0.02 * j] for j, p in enumerate(
                    [leaf for leaf in leaves if leaf not in (suggested.path, product.category.path)][:2])],
            "signals": {"classifier": 0.91, "codes": 0.8, "knn": 0.7},  # as audit.core.scoring writes them
        }
        confidence = round(0.97 - 0.03 * rank, 3) if rank < 20 else round(0.4 + 0.5 * ((rank * 37) % 100) / 100, 3)
        flags.append(Flag.objects.create(
            product=product, run=run, label=product.category, suggested=suggested, confidence=confidence,
            priority=confidence, evidence=evidence, product_updated_at=product.updated_at))
    return {"run": run, "flags": flags, "demo": demo, "categories": categories}


def add_discovery_flags(data: dict, *, twins: int = 3, alone: int = 3) -> list:
    """An active discovery run (codes shifted at level 1) and its flags: on the first `twins` products the
    precision run flagged too (two live flags on one product, as audits raised them before flags were
    merged), and on `alone` products only the discovery codes flag."""
    from audit.models import Flag
    from quantizer.models import QuantizerRun, SemanticId

    precision = data["run"]
    run = QuantizerRun.objects.create(
        flavor="discovery", embedding_model="test", status=QuantizerRun.Status.SUCCEEDED, is_active=True,
        progress=1.0, message="done", n_products=precision.n_products, config=precision.config, metrics=precision.metrics)
    SemanticId.objects.bulk_create(
        SemanticId(run=run, product_id=sid.product_id, codes=[(sid.codes[0] + 5) % 16, *sid.codes[1:]],
                   code="_".join(map(str, [(sid.codes[0] + 5) % 16, *sid.codes[1:]])), token=sid.token)
        for sid in SemanticId.objects.filter(run=precision))
    flagged = {f.product_id for f in data["flags"]}
    leaves = sorted((c for c in data["categories"].values() if not c.children.exists()), key=lambda c: c.path)
    products = [f.product for f in data["flags"][:twins]] + [
        sid.product for sid in SemanticId.objects.filter(run=precision).exclude(product_id__in=flagged)
        .select_related("product__category").order_by("id")[:alone]]
    flags = []
    for rank, product in enumerate(products):
        label = product.category
        suggested = next(c for c in leaves if c.pk != label.pk and c.path.split(" > ")[0] == label.path.split(" > ")[0])
        evidence = {"cluster": {"prefix": "", "level": 2, "size": 1, "composition": [[suggested.path, 1]]},
                    "neighbours": [], "suggestions": [[suggested.path, 0.7]], "signals": {}}
        confidence = round(0.93 - 0.02 * rank, 3)
        flags.append(Flag.objects.create(
            product=product, run=run, label=label, suggested=suggested, confidence=confidence, priority=confidence,
            evidence=evidence, product_updated_at=product.updated_at))
    return flags
