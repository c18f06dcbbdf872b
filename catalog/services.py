"""Writes to the catalog: import, category creation, category moves."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pghistory
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from catalog.models import Category, Product, ProductCategoryEvent
from catalog.rows import FILE_EXTENSIONS, PATH_SEPARATOR, CatalogFileError, CatalogRow, RowError, read_catalog

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
    created_categories: list[str] = field(default_factory=list)  # paths of the categories this import added
    changed_ids: list[int] = field(default_factory=list, repr=False)  # created or updated products
    conflicts: list[ImportConflict] = field(default_factory=list)

    @property
    def categories_created(self) -> int:
        return len(self.created_categories)

    def as_dict(self) -> dict:
        result = {k: v for k, v in asdict(self).items() if k not in ("changed_ids", "conflicts")}
        return {**result, "categories_created": self.categories_created, "conflicts": [str(c) for c in self.conflicts]}


def ensure_categories(paths: Iterable[tuple[str, ...]]) -> tuple[dict[str, Category], list[str]]:
    """Return {path string: Category} for every path and prefix, creating missing nodes level by level,
    and the paths created."""
    wanted: dict[str, tuple[str, ...]] = {}
    for levels in paths:
        for depth in range(1, len(levels) + 1):
            wanted.setdefault(PATH_SEPARATOR.join(levels[:depth]), levels[:depth])
    by_path = {c.path: c for c in Category.objects.filter(path__in=list(wanted))}
    created = []
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
        created += [category.path for category in new]
    return by_path, sorted(created)


def _product_values(row: CatalogRow, category_id: int) -> dict:
    return {
        "name": row.name,
        "brand": row.brand,
        "description": row.description,
        "size": row.size,
        "attributes": row.attributes,
        "category_id": category_id,
    }


def check_category_paths(rows: list[CatalogRow], *, allow_new_categories: bool = False) -> list[CatalogRow]:
    """The rows with each category path spelled as the taxonomy spells it (levels matched without
    regard to case, so `dairy > milk` files under `Dairy > Milk`), or CatalogFileError listing every row
    whose path the taxonomy cannot take:

    - an unknown path, while the taxonomy has categories and new ones are not allowed (with a "did you
      mean" for a near miss): a typo must not create a category silently;
    - a path with sub-categories (in the taxonomy or in the file): products are filed on leaves;
    - a new path under a leaf that holds products: they would be left on a non-leaf.
    """
    existing = set(Category.objects.values_list("path", flat=True))
    spelled = {path.lower(): path for path in existing}
    with_children = {path.rsplit(PATH_SEPARATOR, 1)[0] for path in existing if PATH_SEPARATOR in path}
    resolved = []
    for row in rows:
        levels = []
        for depth, level in enumerate(row.category_path, start=1):
            known = spelled.get(PATH_SEPARATOR.join(row.category_path[:depth]).lower())
            levels.append(known.rsplit(PATH_SEPARATOR, 1)[-1] if known else level)
            spelled.setdefault(PATH_SEPARATOR.join(levels).lower(), PATH_SEPARATOR.join(levels))  # first spelling wins
        resolved.append(replace(row, category_path=tuple(levels)))
    in_file = {PATH_SEPARATOR.join(r.category_path[:d]) for r in resolved for d in range(1, len(r.category_path))}
    leaves = sorted(p for p in existing if p not in with_children)
    # existing leaves the file would put a new category under: do they hold products? (one query, those only)
    under = {a for a in in_file if a in existing and a not in with_children}
    holding = set(Product.objects.filter(category__path__in=under).values_list("category__path", flat=True).distinct())
    errors = []
    for row in resolved:
        path = PATH_SEPARATOR.join(row.category_path)
        if path in with_children or path in in_file:
            errors.append(RowError(row.row, f"category {path!r} has sub-categories: file the product under one of them"))
        elif path not in existing:
            if existing and not allow_new_categories:
                near = difflib.get_close_matches(path, leaves, n=1, cutoff=0.8)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                errors.append(RowError(row.row, f"unknown category {path!r}{hint} (allow new categories to create it)"))
                continue
            ancestors = [PATH_SEPARATOR.join(row.category_path[:d]) for d in range(1, len(row.category_path))]
            full = [a for a in ancestors if a in holding]
            if full:
                errors.append(RowError(row.row, f"category {full[-1]!r} holds products: a sub-category under it "
                                                "would leave them on a non-leaf category"))
    if errors:
        raise CatalogFileError(errors)
    return resolved


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
    *, rows: list[CatalogRow], user=None, progress: Progress | None = None, overwrite: bool = False,
    allow_new_categories: bool = False,
) -> ImportResult:
    """Create or update products by external id, in bulk; one transaction for the whole file.

    A row that would change the category of a product moved since its last import (by a reviewer,
    an undo, the admin or the API) is kept out and listed as a conflict, unless `overwrite`. Category
    paths are checked first (``check_category_paths``); new ones are listed in the result."""
    rows = check_category_paths(rows, allow_new_categories=allow_new_categories)
    with pghistory.context(user=getattr(user, "pk", None), source="import"):
        categories, created_paths = ensure_categories(r.category_path for r in rows)
        existing: dict[str, Product] = {}
        ids = [r.external_id for r in rows]
        for start in range(0, len(ids), 10000):
            for product in Product.objects.filter(external_id__in=ids[start : start + 10000]).select_related(
                "category"
            ):
                existing[product.external_id] = product
        category_of = {row.external_id: categories[PATH_SEPARATOR.join(row.category_path)].pk for row in rows}
        would_move = [
            product.pk for row in rows
            if (product := existing.get(row.external_id)) is not None and product.category_id != category_of[row.external_id]
        ]
        moved = {} if overwrite else moved_since_import(would_move)
        to_create, to_update, unchanged, conflicts = [], [], 0, []
        for row in rows:
            values = _product_values(row, category_of[row.external_id])
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
        created_categories=created_paths,
        changed_ids=[p.pk for p in to_create] + [p.pk for p in to_update],
        conflicts=conflicts,
    )


def import_catalog(
    *, path: str | Path, user=None, progress: Progress | None = None, overwrite: bool = False,
    allow_new_categories: bool = False,
) -> ImportResult:
    """Validate the whole file (raising CatalogFileError with every bad row), then import it."""
    rows = read_catalog(path)
    return import_rows(rows=rows, user=user, progress=progress, overwrite=overwrite,
                       allow_new_categories=allow_new_categories)


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

    try:
        result = import_catalog(path=params["path"], user=user, progress=progress,
                                overwrite=bool(params.get("overwrite")),
                                allow_new_categories=bool(params.get("allow_new_categories")))
    except CatalogFileError as exc:
        raise JobFailed(
            f"{len(exc.errors)} bad row(s), nothing imported", {"errors": [str(e) for e in exc.errors]}
        ) from None
    finally:
        if params.get("uploaded"):  # an uploaded copy is read once: it goes when its import ends
            Path(params["path"]).unlink(missing_ok=True)
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
    from catalog.models import Job

    runs = QuantizerRun.objects.filter(is_active=True, stored_weights__isnull=False).order_by("flavor")
    jobs = []
    for run in runs:  # one pending audit per run: imports in a row share it instead of queueing one each
        pending = Job.objects.filter(kind="audit", status=Job.Status.QUEUED, params__run_id=run.pk).first()
        jobs.append(pending or start_job(kind="audit", params={"run_id": run.pk}, user=user))
    return assigned, [job.pk for job in jobs]


def upload_problem(*, name: str, size: int) -> str | None:
    """Why an uploaded catalog file is refused before it is stored (None: it is fine)."""
    if Path(name).suffix.lower() not in FILE_EXTENSIONS:
        return f"{name}: unsupported file type {Path(name).suffix or '(none)'!r}: use .csv or .jsonl"
    limit = settings.SEMID_MAX_UPLOAD_MB * 1024 * 1024
    if size > limit:
        return (f"{name} is {size / 1024 / 1024:.0f} MB; uploads are limited to {settings.SEMID_MAX_UPLOAD_MB:g} MB "
                "(SEMID_MAX_UPLOAD_MB), or import it with manage.py import_catalog")
    return None


def start_upload_import(*, upload, user=None, overwrite: bool = False, allow_new_categories: bool = False):
    """Save an uploaded catalog file under SEMID_HOME/uploads and queue its import job."""
    import uuid

    from catalog.jobs import start_job

    folder = Path(settings.SEMID_HOME) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}{Path(upload.name).suffix.lower()}"
    with path.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return start_job(kind="import", params={"path": str(path), "filename": upload.name, "uploaded": True, "overwrite": overwrite,
                                          "allow_new_categories": allow_new_categories}, user=user)
