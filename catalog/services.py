"""Writes to the catalog: import, category creation, category moves."""

from __future__ import annotations

import difflib
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pghistory
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from catalog.models import Category, Product, ProductCategoryEvent
from catalog.rows import (
    FILE_EXTENSIONS, PATH_SEPARATOR, CatalogFileError, CatalogRow, RowError, collector_paused, read_catalog,
)
from jobs.runner import start_job

Progress = Callable[[int, int], None]
BATCH = 2000
# A row's attributes as JSON text: json.dumps's own encoder, less its check for circular references (a row's
# attributes are read from a file and hold none), a quarter of the time a row (timeit: 1.09 us against 1.47 us).
_attributes_json = json.JSONEncoder(check_circular=False).encode


@dataclass(frozen=True)
class ImportConflict:
    """A row that would move a product whose category someone changed after its last import."""

    row: int
    external_id: str
    current_path: str | None
    file_path: str | None  # None: the file leaves the product uncategorized
    changed_by: str  # the source of the later change, e.g. "review:accept"

    def __str__(self) -> str:
        return (f"row {self.row}: {self.external_id} is in {self.current_path or 'no category'} since "
                f"{self.changed_by}; the file says {self.file_path or 'no category'} (kept, not imported)")


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


def _staging_values(row: CatalogRow, category_id: int | None) -> tuple:
    """One row of the staging table, in STAGING_COLUMNS order."""
    attributes = _attributes_json(row.attributes) if row.attributes else "{}"
    return (row.row, row.external_id, row.name, row.brand, row.description, row.size, attributes, category_id)


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
    # Each distinct path once, in file order: a path resolves the same way at every later row.
    spelling: dict[tuple[str, ...], tuple[str, ...]] = {}
    for written in dict.fromkeys(row.category_path for row in rows):
        levels = []
        for depth, level in enumerate(written, start=1):
            known = spelled.get(PATH_SEPARATOR.join(written[:depth]).lower())
            levels.append(known.rsplit(PATH_SEPARATOR, 1)[-1] if known else level)
            spelled.setdefault(PATH_SEPARATOR.join(levels).lower(), PATH_SEPARATOR.join(levels))  # first spelling wins
        spelling[written] = tuple(levels)
    resolved = [row if spelling[row.category_path] == row.category_path
                else row._replace(category_path=spelling[row.category_path]) for row in rows]
    paths = set(spelling.values())
    in_file = {PATH_SEPARATOR.join(levels[:d]) for levels in paths for d in range(1, len(levels))}
    leaves = sorted(p for p in existing if p not in with_children)
    # existing leaves the file would put a new category under: do they hold products? (one query, those only)
    under = {a for a in in_file if a in existing and a not in with_children}
    holding = set(Product.objects.filter(category__path__in=under).values_list("category__path", flat=True).distinct())

    def problem(levels: tuple[str, ...]) -> str | None:
        path = PATH_SEPARATOR.join(levels)
        if path in with_children or path in in_file:
            return f"category {path!r} has sub-categories: file the product under one of them"
        if path not in existing:
            if existing and not allow_new_categories:
                near = difflib.get_close_matches(path, leaves, n=1, cutoff=0.8)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                return f"unknown category {path!r}{hint} (allow new categories to create it)"
            ancestors = [PATH_SEPARATOR.join(levels[:d]) for d in range(1, len(levels))]
            full = [a for a in ancestors if a in holding]
            if full:
                return (f"category {full[-1]!r} holds products: a sub-category under it "
                        "would leave them on a non-leaf category")
        return None

    problems = {levels: problem(levels) for levels in paths if levels}  # (): an uncategorized row
    errors = [RowError(row.row, problems[row.category_path]) for row in resolved if problems.get(row.category_path)]
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


# The file's valid rows are streamed into this table with COPY, then written to catalog_product by
# two set-based statements; the history triggers fire on those statements as on any other write.
STAGING_TABLE = "product_import"
STAGING_COLUMNS = {"line": "integer", "external_id": "text", "name": "text", "brand": "text", "description": "text",
                   "size": "text", "attributes": "jsonb", "category_id": "bigint"}
# Products the file would move to another category: the candidates for a conflict.
WOULD_MOVE_SQL = f"""
    SELECT s.line, s.external_id, p.id, current.path, wanted.path
    FROM {STAGING_TABLE} s
    JOIN catalog_product p ON p.external_id = s.external_id
    LEFT JOIN catalog_category wanted ON wanted.id = s.category_id
    LEFT JOIN catalog_category current ON current.id = p.category_id
    WHERE p.category_id IS DISTINCT FROM s.category_id
"""
# New products, in file order (ids follow it). Their "created" history rows are written by pghistory's
# statement-level trigger, one INSERT from the statement's transition table, under the import's context. The
# trigger records that context even for an INSERT of no rows, so a file without new products skips it
# (NEW_ROWS_SQL). No ON CONFLICT: every proposed row would draw an id from the sequence, and a re-import would
# burn one per existing product.
NEW_ROWS = f"FROM {STAGING_TABLE} s WHERE NOT EXISTS (SELECT 1 FROM catalog_product p WHERE p.external_id = s.external_id)"
NEW_ROWS_SQL = f"SELECT EXISTS (SELECT 1 {NEW_ROWS})"
INSERT_SQL = f"""
    INSERT INTO catalog_product
        (external_id, name, brand, description, size, attributes, extracted, category_id, created_at, updated_at)
    SELECT s.external_id, s.name, s.brand, s.description, s.size, s.attributes, '{{}}'::jsonb, s.category_id, %s, %s
    {NEW_ROWS}
    ORDER BY s.line
    RETURNING id
"""
# The category-move history trigger (row-level) first asks pgtrigger whether to skip itself. With its setting unset,
# that check raises and catches an error in every moved row, and each caught error scans the transaction's queue of
# deferred foreign-key checks (one per row written so far): the cost of a row grows with the file. An empty list
# skips no trigger.
IGNORE_NO_TRIGGER_SQL = "SELECT set_config('pgtrigger.ignore', '{}', true)"
# Existing products whose file row differs; updated_at marks them as changed (stale flags).
UPDATE_SQL = f"""
    UPDATE catalog_product p
    SET name = s.name, brand = s.brand, description = s.description, size = s.size,
        attributes = s.attributes, category_id = s.category_id, updated_at = %s
    FROM {STAGING_TABLE} s
    WHERE p.external_id = s.external_id
      AND (p.name, p.brand, p.description, p.size, p.attributes, p.category_id)
          IS DISTINCT FROM (s.name, s.brand, s.description, s.size, s.attributes, s.category_id)
    RETURNING s.line, p.id
"""


@collector_paused()
@transaction.atomic
def import_rows(
    *, rows: list[CatalogRow], user=None, progress: Progress | None = None, overwrite: bool = False,
    allow_new_categories: bool = False,
) -> ImportResult:
    """Create or update products by external id, set-based; one transaction for the whole file.

    The rows are copied (COPY) into a temporary table; one INSERT adds the new products and one UPDATE
    changes those whose values differ, so the history triggers record each creation and category move
    under this import's context. A row that would change the category of a product moved since its
    last import (by a reviewer, an undo, the admin or the API) is kept out and listed as a conflict,
    unless `overwrite`. Category paths are checked first (``check_category_paths``); new ones are
    listed in the result."""
    rows = check_category_paths(rows, allow_new_categories=allow_new_categories)
    with pghistory.context(user=getattr(user, "pk", None), source="import"):
        paths = [p for p in dict.fromkeys(r.category_path for r in rows) if p]  # distinct, in file order
        categories, created_paths = ensure_categories(paths)
        category_id = {levels: categories[PATH_SEPARATOR.join(levels)].pk for levels in paths}
        category_id[()] = None  # an uncategorized row (read_catalog's allow_uncategorized)
        now = timezone.now()
        with connection.cursor() as cursor:
            columns = ", ".join(f"{name} {kind}" for name, kind in STAGING_COLUMNS.items())
            cursor.execute(f"CREATE TEMPORARY TABLE {STAGING_TABLE} ({columns}) ON COMMIT DROP")
            with cursor.copy(f"COPY {STAGING_TABLE} ({', '.join(STAGING_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(_staging_values(row, category_id[row.category_path]))
            if Product.objects.exists():
                # row count and join-key statistics, so a small file meets a large catalog through its index
                cursor.execute(f"ANALYZE {STAGING_TABLE} (external_id)")
            cursor.execute(WOULD_MOVE_SQL)
            would_move = cursor.fetchall()
            moved = {} if overwrite else moved_since_import([product_id for _, _, product_id, _, _ in would_move])
            conflicts = sorted(
                (ImportConflict(row=row, external_id=external_id, current_path=current_path, file_path=file_path,
                                changed_by=moved[product_id])
                 for row, external_id, product_id, current_path, file_path in would_move if product_id in moved),
                key=lambda conflict: conflict.row,
            )
            if conflicts:
                cursor.execute(f"DELETE FROM {STAGING_TABLE} WHERE line = ANY(%s)", [[c.row for c in conflicts]])
            staged = len(rows) - len(conflicts)
            cursor.execute(NEW_ROWS_SQL)
            created_ids = []
            if cursor.fetchone()[0]:
                cursor.execute(INSERT_SQL, [now, now])
                created_ids = sorted(product_id for (product_id,) in cursor.fetchall())  # ids follow file order
            if progress and staged:
                progress(len(created_ids), staged)
            updated_ids = []
            if len(created_ids) < staged:  # else every row was new: nothing to compare
                cursor.execute(IGNORE_NO_TRIGGER_SQL)
                cursor.execute(UPDATE_SQL, [now])
                updated_ids = [product_id for _, product_id in sorted(cursor.fetchall())]  # in file order
            if progress and staged:
                progress(staged, staged)
            cursor.execute(f"DROP TABLE {STAGING_TABLE}")
    return ImportResult(
        rows=len(rows),
        created=len(created_ids),
        updated=len(updated_ids),
        unchanged=len(rows) - len(created_ids) - len(updated_ids) - len(conflicts),
        created_categories=created_paths,
        changed_ids=created_ids + updated_ids,
        conflicts=conflicts,
    )


def import_catalog(
    *, path: str | Path, user=None, progress: Progress | None = None, overwrite: bool = False,
    allow_new_categories: bool = False, allow_uncategorized: bool = False,
) -> ImportResult:
    """Validate the whole file (raising CatalogFileError with every bad row), then import it. With
    ``allow_uncategorized`` a row with an empty category_path imports its product without a category."""
    rows = read_catalog(path, allow_uncategorized=allow_uncategorized)
    return import_rows(rows=rows, user=user, progress=progress, overwrite=overwrite,
                       allow_new_categories=allow_new_categories)


@transaction.atomic
def move_product(*, product: Product, category: Category | None, user=None, source: str = "manual") -> Product:
    """Change one product's category; pghistory records the move with who and why."""
    with pghistory.context(user=getattr(user, "pk", None), source=source):
        product.category = category
        product.save(update_fields=["category", "updated_at"])
    return product


def upload_problem(*, name: str, size: int) -> str | None:
    """Why an uploaded catalog file is refused before it is stored (None: it is fine)."""
    if Path(name).suffix.lower() not in FILE_EXTENSIONS:
        return f"{name}: unsupported file type {Path(name).suffix or '(none)'!r}: use .csv or .jsonl"
    limit = settings.SEMID_MAX_UPLOAD_MB * 1024 * 1024
    if size > limit:
        return (f"{name} is {size / 1024 / 1024:.0f} MB; uploads are limited to {settings.SEMID_MAX_UPLOAD_MB:g} MB "
                "(SEMID_MAX_UPLOAD_MB), or import it with manage.py import_catalog")
    return None


def start_upload_import(*, upload, user=None, overwrite: bool = False, allow_new_categories: bool = False,
                        allow_uncategorized: bool = False):
    """Save an uploaded catalog file under SEMID_HOME/uploads and queue its import job."""
    folder = Path(settings.SEMID_HOME) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}{Path(upload.name).suffix.lower()}"
    with path.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return start_job(kind="import", params={"path": str(path), "filename": upload.name, "uploaded": True, "overwrite": overwrite,
                                          "allow_new_categories": allow_new_categories,
                                          "allow_uncategorized": allow_uncategorized}, user=user)
