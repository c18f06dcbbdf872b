"""Writes to the catalog: import, category creation, category moves."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pghistory
from django.db import transaction
from django.utils import timezone

from catalog.models import Category, Product, ProductCategoryEvent
from catalog.rows import PATH_SEPARATOR, CatalogRow, read_catalog

Progress = Callable[[int, int], None]
BATCH = 2000
PRODUCT_FIELDS = ("name", "brand", "description", "size", "attributes", "category_id")


@dataclass(frozen=True)
class ImportConflict:
    """A row that would move a product whose category someone changed after its last import."""

    row: int
    external_id: str
    current_path: str | None
    file_path: str
    changed_by: str  # the source of the later change, e.g. "review:accept"

    def __str__(self) -> str:
        return (f"row {self.row}: {self.external_id} is in {self.current_path or 'no category'} since "
                f"{self.changed_by}; the file says {self.file_path} (kept, not imported)")


@dataclass
class ImportResult:
    rows: int
    created: int
    updated: int
    unchanged: int
    categories_created: int
    changed_ids: list[int] = field(default_factory=list, repr=False)  # created or updated products
    conflicts: list[ImportConflict] = field(default_factory=list)

    def as_dict(self) -> dict:
        result = {k: v for k, v in asdict(self).items() if k not in ("changed_ids", "conflicts")}
        return {**result, "conflicts": [str(c) for c in self.conflicts]}


def ensure_categories(paths: Iterable[tuple[str, ...]]) -> tuple[dict[str, Category], int]:
    """Return {path string: Category} for every path and prefix, creating missing nodes level by level."""
    wanted: dict[str, tuple[str, ...]] = {}
    for levels in paths:
        for depth in range(1, len(levels) + 1):
            wanted.setdefault(PATH_SEPARATOR.join(levels[:depth]), levels[:depth])
    by_path = {c.path: c for c in Category.objects.filter(path__in=list(wanted))}
    created = 0
    for depth in sorted({len(v) for v in wanted.values()}):
        new = [
            Category(
                name=levels[-1],
                path=path,
                depth=depth,
                parent=by_path[PATH_SEPARATOR.join(levels[:-1])] if depth > 1 else None,
            )
            for path, levels in wanted.items()
            if len(levels) == depth and path not in by_path
        ]
        for category in Category.objects.bulk_create(new, batch_size=BATCH):
            by_path[category.path] = category
        created += len(new)
    return by_path, created


def _product_values(row: CatalogRow, category_id: int) -> dict:
    return {
        "name": row.name,
        "brand": row.brand,
        "description": row.description,
        "size": row.size,
        "attributes": row.attributes,
        "category_id": category_id,
    }


def moved_since_import(product_ids: list[int]) -> dict[int, str]:
    """{product id: source} for the products whose latest category event did not come from an
    import (a reviewer's decision, an undo, an admin or API move): an older file must not undo it."""
    latest: dict[int, str] = {}
    for start in range(0, len(product_ids), 10000):
        events = (
            ProductCategoryEvent.objects.filter(pgh_obj_id__in=product_ids[start : start + 10000])
            .order_by("pgh_obj_id", "-pgh_id")
            .distinct("pgh_obj_id")
            .values_list("pgh_obj_id", "pgh_context__metadata")
        )
        for product_id, metadata in events:
            source = (metadata or {}).get("source") or "a change outside imports"
            if source != "import":
                latest[product_id] = source
    return latest


@transaction.atomic
def import_rows(
    *, rows: list[CatalogRow], user=None, progress: Progress | None = None, overwrite: bool = False
) -> ImportResult:
    """Create or update products by external id, in bulk; one transaction for the whole file.

    A row that would change the category of a product moved since its last import (by a reviewer,
    an undo, the admin or the API) is kept out and listed as a conflict, unless `overwrite`."""
    with pghistory.context(user=getattr(user, "pk", None), source="import"):
        categories, categories_created = ensure_categories(r.category_path for r in rows)
        existing: dict[str, Product] = {}
        ids = [r.external_id for r in rows]
        for start in range(0, len(ids), 10000):
            for product in Product.objects.filter(external_id__in=ids[start : start + 10000]).select_related(
                "category"
            ):
                existing[product.external_id] = product
        would_move = [
            product.pk for row in rows
            if (product := existing.get(row.external_id)) is not None
            and product.category_id != categories[PATH_SEPARATOR.join(row.category_path)].pk
        ]
        moved = {} if overwrite else moved_since_import(would_move)
        to_create, to_update, unchanged, conflicts = [], [], 0, []
        for row in rows:
            values = _product_values(row, categories[PATH_SEPARATOR.join(row.category_path)].pk)
            product = existing.get(row.external_id)
            if product is None:
                to_create.append(Product(external_id=row.external_id, **values))
            elif product.pk in moved and product.category_id != values["category_id"]:
                conflicts.append(ImportConflict(
                    row=row.row, external_id=row.external_id,
                    current_path=product.category.path if product.category else None,
                    file_path=PATH_SEPARATOR.join(row.category_path), changed_by=moved[product.pk],
                ))
            elif any(getattr(product, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(product, k, v)
                to_update.append(product)
            else:
                unchanged += 1
        total, done = len(to_create) + len(to_update), 0
        for start in range(0, len(to_create), BATCH):
            Product.objects.bulk_create(to_create[start : start + BATCH])
            done += len(to_create[start : start + BATCH])
            if progress:
                progress(done, total)
        for start in range(0, len(to_update), BATCH):
            # bulk_update skips auto_now; updated_at marks the product as changed (stale flags).
            batch = to_update[start : start + BATCH]
            now = timezone.now()
            for product in batch:
                product.updated_at = now
            Product.objects.bulk_update(batch, [*PRODUCT_FIELDS, "updated_at"])
            done += len(batch)
            if progress:
                progress(done, total)
    return ImportResult(
        rows=len(rows),
        created=len(to_create),
        updated=len(to_update),
        unchanged=unchanged,
        categories_created=categories_created,
        changed_ids=[p.pk for p in to_create] + [p.pk for p in to_update],
        conflicts=conflicts,
    )


def import_catalog(
    *, path: str | Path, user=None, progress: Progress | None = None, overwrite: bool = False
) -> ImportResult:
    """Validate the whole file (raising CatalogFileError with every bad row), then import it."""
    rows = read_catalog(path)
    return import_rows(rows=rows, user=user, progress=progress, overwrite=overwrite)


@transaction.atomic
def move_product(*, product: Product, category: Category | None, user=None, source: str = "manual") -> Product:
    """Change one product's category; pghistory records the move with who and why."""
    with pghistory.context(user=getattr(user, "pk", None), source=source):
        product.category = category
        product.save(update_fields=["category", "updated_at"])
    return product


def import_job(*, params: dict, user=None, progress=None) -> dict:
    """Job service for uploads: validate, import, and report every bad row on failure."""
    from catalog.jobs import JobFailed
    from catalog.rows import CatalogFileError

    try:
        rows = read_catalog(params["path"])
    except CatalogFileError as exc:
        raise JobFailed(
            f"{len(exc.errors)} bad row(s), nothing imported", {"errors": [str(e) for e in exc.errors]}
        ) from None
    result = import_rows(rows=rows, user=user, progress=progress, overwrite=bool(params.get("overwrite")))
    assigned, audits = assign_and_audit(product_ids=result.changed_ids, user=user)
    return {**result.as_dict(), "assigned": assigned, "audit_jobs": audits, "filename": params.get("filename", "")}


def assign_and_audit(*, product_ids: list[int], user=None) -> tuple[int, list[int]]:
    """After an import: new and changed products get codes from the active runs right away (cold
    start, no retraining), and each such run's audit is queued so its flags are refreshed.
    Returns (codes assigned, ids of the queued audit jobs)."""
    from catalog.jobs import start_job
    from quantizer.models import QuantizerRun
    from quantizer.services import assign_products

    assigned = assign_products(product_ids=product_ids)
    if not assigned:
        return 0, []
    runs = QuantizerRun.objects.filter(is_active=True).exclude(weights=None).order_by("flavor")
    jobs = [start_job(kind="audit", params={"run_id": run.pk}, user=user) for run in runs]
    return assigned, [job.pk for job in jobs]


def start_upload_import(*, upload, user=None, overwrite: bool = False):
    """Save an uploaded catalog file under SEMID_HOME/uploads and queue its import job."""
    import uuid

    from django.conf import settings

    from catalog.jobs import start_job

    folder = Path(settings.SEMID_HOME) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}{Path(upload.name).suffix.lower()}"
    with path.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return start_job(kind="import", params={"path": str(path), "filename": upload.name, "overwrite": overwrite}, user=user)
