"""Writes of the baskets app: importing orders, and the co-purchase pairs computed from them in bulk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from baskets.core.copurchase import MIN_PAIR_SUPPORT  # noqa: F401 (re-exported: the app's name for it)
from baskets.core.copurchase import CHANCE_LIFT_SQL, copurchase_embedding, lift_bound_sql
from baskets.models import BasketLine, ClusterCoPurchase, CoPurchase, NextItemModel
from baskets.rows import NO_REORDERED, BasketFileError, BasketLines, read_baskets
from catalog.models import Product
from catalog.rows import RowError
from quantizer.models import QuantizerRun, SemanticId

Progress = Callable[[int, int], None]

STEPS = 4  # read, stage and check, write the lines, compute the pairs: progress(step, STEPS)
COPY_CHUNK = 50_000  # lines formatted per write to COPY

STAGING_TABLE = "basket_import"
# The same product twice in an order, or two products at one cart position: the later line is the error.
REPEATED_PRODUCT_SQL = f"""
    SELECT s.line, s.order_id, d.first
    FROM {STAGING_TABLE} s
    JOIN (SELECT order_id, product_id, min(line) AS first FROM {STAGING_TABLE}
          GROUP BY order_id, product_id HAVING count(*) > 1) d USING (order_id, product_id)
    WHERE s.line > d.first
"""
REPEATED_POSITION_SQL = f"""
    SELECT s.line, s.order_id, s.position, d.first
    FROM {STAGING_TABLE} s
    JOIN (SELECT order_id, position, min(line) AS first FROM {STAGING_TABLE}
          GROUP BY order_id, position HAVING count(*) > 1) d USING (order_id, position)
    WHERE s.line > d.first
"""
# A file states whole orders: lines of its orders that it no longer lists go.
REMOVE_SQL = f"""
    DELETE FROM baskets_basketline l
    WHERE l.order_id IN (SELECT order_id FROM {STAGING_TABLE})
      AND NOT EXISTS (SELECT 1 FROM {STAGING_TABLE} s WHERE s.order_id = l.order_id AND s.product_id = l.product_id)
"""
UPDATE_SQL = f"""
    UPDATE baskets_basketline l
    SET add_to_cart_order = s.position, reordered = s.reordered
    FROM {STAGING_TABLE} s
    WHERE l.order_id = s.order_id AND l.product_id = s.product_id
      AND (l.add_to_cart_order, l.reordered) IS DISTINCT FROM (s.position, s.reordered)
"""
INSERT_SQL = f"""
    INSERT INTO baskets_basketline (order_id, product_id, add_to_cart_order, reordered)
    SELECT s.order_id, s.product_id, s.position, s.reordered
    FROM {STAGING_TABLE} s
    WHERE NOT EXISTS (SELECT 1 FROM baskets_basketline l WHERE l.order_id = s.order_id AND l.product_id = s.product_id)
    ORDER BY s.line
"""
# Every pair of products in an order once (a < b), counted over all orders in one GROUP BY; a product's
# count is the number of orders holding it (a product is in an order once: BasketLine's key).
COPURCHASE_SQL = f"""
    WITH buyers AS (
        SELECT product_id, count(*)::float8 AS orders FROM baskets_basketline GROUP BY product_id
    ), sizes AS (
        SELECT count(*)::float8 AS lines FROM baskets_basketline GROUP BY order_id
    ), total AS (
        SELECT count(*)::float8 AS orders, {CHANCE_LIFT_SQL} AS chance FROM sizes
    ), pairs AS (
        SELECT x.product_id AS a, y.product_id AS b, count(*) AS orders
        FROM baskets_basketline x
        JOIN baskets_basketline y ON y.order_id = x.order_id AND y.product_id > x.product_id
        GROUP BY x.product_id, y.product_id
        HAVING count(*) >= %(min_support)s
    ), lifted AS (
        SELECT pairs.a, pairs.b, pairs.orders, pairs.orders * total.orders / (ba.orders * bb.orders) AS lift,
               total.chance
        FROM pairs
        JOIN buyers ba ON ba.product_id = pairs.a
        JOIN buyers bb ON bb.product_id = pairs.b
        CROSS JOIN total
    )
    INSERT INTO baskets_copurchase (product_a_id, product_b_id, orders, lift, pmi, above_chance)
    SELECT a, b, orders, lift, ln(lift) / ln(2.0), {lift_bound_sql("lift", "orders")} / chance FROM lifted
"""
# The GROUP BY holds every distinct pair of the orders (~10M for instacart_baskets.csv): in memory
# rather than spilled to disk, for this transaction only.
PAIRS_WORK_MEM = "256MB"


@dataclass
class BasketImportResult:
    lines: int  # lines in the file
    orders: int  # distinct orders in the file
    created: int
    updated: int  # position or reordered changed
    unchanged: int
    removed: int  # lines of the file's orders that the file no longer lists
    pairs: int  # co-purchase pairs stored after the import (all orders, not only the file's)

    def as_dict(self) -> dict:
        return asdict(self)


def _copy_text(lines: BasketLines, start: int, stop: int) -> str:
    flags = {0: "f", 1: "t", NO_REORDERED: "\\N"}
    return "".join(
        f"{line}\t{order}\t{product}\t{position}\t{flags[reordered]}\n"
        for line, order, product, position, reordered in zip(
            lines.line[start:stop], lines.order_id[start:stop], lines.product_id[start:stop],
            lines.position[start:stop], lines.reordered[start:stop])
    )


def _stage(cursor, lines: BasketLines) -> None:
    cursor.execute(f"CREATE TEMPORARY TABLE {STAGING_TABLE} (line integer, order_id bigint, product_id bigint, "
                   "position integer, reordered boolean) ON COMMIT DROP")
    with cursor.copy(f"COPY {STAGING_TABLE} (line, order_id, product_id, position, reordered) FROM STDIN") as copy:
        for start in range(0, len(lines), COPY_CHUNK):
            copy.write(_copy_text(lines, start, start + COPY_CHUNK))
    cursor.execute(f"CREATE INDEX ON {STAGING_TABLE} (order_id, product_id)")
    cursor.execute(f"ANALYZE {STAGING_TABLE}")


def _repeated_lines(cursor) -> list[RowError]:
    cursor.execute(REPEATED_PRODUCT_SQL)
    errors = [RowError(line, f"the product is already in order {order} (row {first})")
              for line, order, first in cursor.fetchall()]
    cursor.execute(REPEATED_POSITION_SQL)
    errors += [RowError(line, f"add_to_cart_order {position} of order {order} is taken by row {first}")
               for line, order, position, first in cursor.fetchall()]
    return errors


def import_baskets(*, path: str | Path, progress: Progress | None = None) -> BasketImportResult:
    """Import a basket file (`order_id,external_id,add_to_cart_order[,reordered]`), then recompute the
    co-purchase pairs; all in one transaction.

    Every line is checked first (baskets.rows.read_baskets, then repeats within an order on the staged
    lines); any bad line raises BasketFileError listing them all with their line numbers, and nothing
    changes. The file states whole orders: its lines are created or updated by (order, product), and
    lines of its orders it no longer lists are removed; orders it does not name stay. Importing the
    same file again changes nothing (and the pairs are not recomputed)."""
    report = progress or (lambda done, total: None)
    product_ids = dict(Product.objects.values_list("external_id", "id"))
    lines, errors = read_baskets(path, product_ids=product_ids)
    del product_ids
    report(1, STEPS)
    with transaction.atomic(), connection.cursor() as cursor:
        _stage(cursor, lines)
        errors += _repeated_lines(cursor)
        if errors:
            raise BasketFileError(sorted(errors, key=lambda e: e.row or 0))
        report(2, STEPS)
        # One import at a time; pages keep reading the previous lines and pairs until the commit.
        cursor.execute("LOCK TABLE baskets_basketline, baskets_copurchase IN EXCLUSIVE MODE")
        cursor.execute(REMOVE_SQL)
        removed = cursor.rowcount
        cursor.execute(UPDATE_SQL)
        updated = cursor.rowcount
        cursor.execute(INSERT_SQL)
        created = cursor.rowcount
        cursor.execute(f"SELECT count(DISTINCT order_id) FROM {STAGING_TABLE}")
        (orders,) = cursor.fetchone()
        cursor.execute(f"DROP TABLE {STAGING_TABLE}")
        cursor.execute("ANALYZE baskets_basketline")
        report(3, STEPS)
        # The pairs follow from the lines: a file that changed none (a re-import) leaves them as they are.
        if created or updated or removed:
            pairs = compute_copurchase()
            for run in QuantizerRun.objects.filter(is_active=True):
                compute_cluster_copurchase(run=run)
        else:
            pairs = CoPurchase.objects.count()
        report(4, STEPS)
    return BasketImportResult(lines=len(lines), orders=orders, created=created, updated=updated,
                              unchanged=len(lines) - created - updated, removed=removed, pairs=pairs)


@transaction.atomic
def compute_copurchase(*, min_support: int = MIN_PAIR_SUPPORT) -> int:
    """Rewrite the co-purchase pairs from all basket lines, in one INSERT … SELECT: each pair of products
    bought together in at least `min_support` orders, with its count, lift, PMI and `above_chance` (the lift's
    lower bound over the lift of chance in orders of these sizes). Returns the pairs stored."""
    if min_support < 1:
        raise ValueError(f"min_support must be at least 1, got {min_support}")
    with connection.cursor() as cursor:
        cursor.execute("LOCK TABLE baskets_copurchase IN EXCLUSIVE MODE")  # readers see the old pairs till commit
        cursor.execute("SELECT set_config('work_mem', %s, true)", [PAIRS_WORK_MEM])
        # The planner probes the key of each line's order through a Memoize cache that never hits (every
        # probe is a new (order, product)): 29 s with it, 16 s with a hash join, on instacart_baskets.csv.
        cursor.execute("SELECT set_config('enable_memoize', 'off', true)")
        cursor.execute("DELETE FROM baskets_copurchase")
        cursor.execute(COPURCHASE_SQL, {"min_support": min_support})
        stored = cursor.rowcount
        cursor.execute("ANALYZE baskets_copurchase")
    return stored


# --------------------------------------------------------------------------- clusters bought together

# The tree's levels whose clusters say which clusters they are bought with. A deeper cluster holds a few
# products (about 8 at level 3 of Instacart's codes), whose own complements their product pages list.
CLUSTER_LEVELS = 2
CLUSTER_PARTNERS = 8  # stored per cluster, the most surely above chance first
# A cluster is in an order when any of its products is; then the product pairs' rule, one level up: every
# pair of clusters of one level in an order once, their orders together and lift over the orders holding a
# product the run codes, kept when surely above the level's chance (an order's size: the clusters it holds).
CLUSTER_COPURCHASE_SQL = f"""
    WITH coded AS (
        SELECT l.order_id, s.codes FROM baskets_basketline l
        JOIN quantizer_semanticid s ON s.product_id = l.product_id AND s.run_id = %(run)s
    ), present AS (
        SELECT DISTINCT v.level, c.order_id, array_to_string(c.codes[1:v.level], '_') AS prefix
        FROM coded c CROSS JOIN generate_series(1, %(levels)s) AS v(level)
    ), sizes AS (
        SELECT level, prefix, count(*)::float8 AS orders FROM present GROUP BY level, prefix
    ), order_sizes AS (
        SELECT level, count(*)::float8 AS lines FROM present GROUP BY level, order_id
    ), total AS (
        SELECT level, count(*)::float8 AS orders, {CHANCE_LIFT_SQL} AS chance FROM order_sizes GROUP BY level
    ), pairs AS (
        SELECT x.level, x.prefix, y.prefix AS other, count(*) AS orders
        FROM present x JOIN present y ON y.order_id = x.order_id AND y.level = x.level AND y.prefix <> x.prefix
        GROUP BY x.level, x.prefix, y.prefix
        HAVING count(*) >= %(min_support)s
    ), lifted AS (
        SELECT p.level, p.prefix, p.other, p.orders, p.orders * total.orders / (a.orders * b.orders) AS lift,
               total.chance
        FROM pairs p
        JOIN sizes a ON a.level = p.level AND a.prefix = p.prefix
        JOIN sizes b ON b.level = p.level AND b.prefix = p.other
        JOIN total ON total.level = p.level
        WHERE p.orders * total.orders > a.orders * b.orders
    ), bounded AS (
        SELECT *, {lift_bound_sql("lift", "orders")} AS bound FROM lifted
    ), ranked AS (
        SELECT level, prefix, other, orders, lift,
               row_number() OVER (PARTITION BY level, prefix ORDER BY bound DESC, lift DESC, orders DESC, other) AS rank
        FROM bounded
        WHERE bound > chance
    )
    INSERT INTO baskets_clustercopurchase (run_id, level, prefix, other, rank, orders, lift)
    SELECT %(run)s, level, prefix, other, rank, orders, lift FROM ranked WHERE rank <= %(partners)s
"""


@transaction.atomic
def compute_cluster_copurchase(*, run, min_support: int = MIN_PAIR_SUPPORT) -> int:
    """Rewrite the run's clusters bought together (`ClusterCoPurchase`) from all basket lines, in one
    INSERT … SELECT: at each of the first CLUSTER_LEVELS levels (not the last, whose clusters are single
    products), per cluster the CLUSTER_PARTNERS others in at least `min_support` orders surely above chance
    with the orders' sizes kept (the lift's lower bound over the level's `chance_lift`, the clusters an order
    holds its size), the surest first, as a product's complements. Returns the rows stored."""
    if min_support < 1:
        raise ValueError(f"min_support must be at least 1, got {min_support}")
    codes = SemanticId.objects.filter(run=run).values_list("codes", flat=True).first()
    levels = min(CLUSTER_LEVELS, len(codes) - 1) if codes else 0
    ClusterCoPurchase.objects.filter(run=run).delete()
    if levels < 1:
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('work_mem', %s, true)", [PAIRS_WORK_MEM])
        cursor.execute(CLUSTER_COPURCHASE_SQL, {"run": run.pk, "levels": levels, "min_support": min_support,
                                                "partners": CLUSTER_PARTNERS})
        return cursor.rowcount


def cluster_copurchase_job(*, params: dict, user=None, progress=None) -> dict:
    """The `cluster_copurchase` job: one run's clusters bought together."""
    run = QuantizerRun.objects.get(pk=params["run"])
    return {"run": run.pk, "rows": compute_cluster_copurchase(run=run)}


def on_run_activated(sender, run, **kwargs) -> None:
    """A run became active: its clusters bought together are computed by a job (seconds to a minute on
    131,209 orders), once orders exist."""
    from jobs.runner import start_job

    if BasketLine.objects.exists():
        start_job(kind="cluster_copurchase", params={"run": run.pk})


# --------------------------------------------------------------------------- "customers may add next"

NEXT_ITEM_HOLDOUT = 0.1  # share of orders held out for the model's recorded figures
EpochHook = Callable[[int, int, dict], None]  # (epoch, epochs, the epoch's history row)


class NoBaskets(ValueError):
    """Something needs orders and none is imported."""


def _orders_over_codes(run) -> tuple[list, np.ndarray, np.ndarray]:
    """The imported orders as arrays of rows into the run's codes (cart order; lines of products the run
    does not code are left out), the (N, L) codes and the product id of each row."""
    from quantizer.models import SemanticId

    coded = list(SemanticId.objects.filter(run=run).order_by("product_id").values_list("product_id", "codes"))
    if not coded:
        raise ValueError(f"run #{run.pk} codes no product")
    product_ids = np.array([pk for pk, _ in coded], dtype=np.int64)
    codes = np.array([c for _, c in coded], dtype=np.int64)
    return orders_over(product_ids), codes, product_ids


def orders_over(product_ids: np.ndarray) -> list[np.ndarray]:
    """The imported orders, each an array of rows into `product_ids` in cart order (lines of other products
    left out; an order left empty is dropped). Raises NoBaskets when no basket is imported."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT order_id, product_id FROM {BasketLine._meta.db_table} "
                       "ORDER BY order_id, add_to_cart_order")
        lines = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 2)
    if not len(lines):
        raise NoBaskets("no basket is imported: manage.py import_baskets PATH first")
    order = np.argsort(product_ids, kind="stable")
    ids = np.asarray(product_ids, dtype=np.int64)[order]
    at = np.searchsorted(ids, lines[:, 1])
    known = (at < len(ids)) & (ids[np.minimum(at, len(ids) - 1)] == lines[:, 1])
    orders, rows = lines[known, 0], order[at[known]]
    starts = np.flatnonzero(np.r_[True, orders[1:] != orders[:-1]]) if len(orders) else np.zeros(0, int)
    return np.split(rows, starts[1:]) if len(rows) else []


def copurchase_rows(*, product_ids: np.ndarray) -> np.ndarray:
    """The extra input "copurchase" of a quantizer run (registered in BasketsConfig.ready; quantizer.inputs):
    each product's row of `copurchase_embedding` over every imported order, in `product_ids` order; zero for a
    product never bought with another. Raises NoBaskets when no basket is imported."""
    return copurchase_embedding(orders_over(product_ids), len(product_ids))


def next_item_job(*, params: dict, user=None, progress=None) -> dict:
    """The `next_item` job: `train_next_item_model` for `params["flavor"]` (and `config` overrides) on this
    machine's device, its epochs as the job's progress."""
    from catalog.encoder import default_device
    from jobs.runner import JobFailed
    from quantizer.services import NoActiveRun

    def on_epoch(epoch, total, row):
        if progress:
            progress(epoch, total, f"epoch {epoch}/{total}")

    try:
        record = train_next_item_model(flavor=params["flavor"], config=params.get("config"), device=default_device(),
                                       on_epoch=on_epoch)
    except (NoBaskets, NoActiveRun, ValueError) as exc:
        raise JobFailed(str(exc)) from exc
    return {"model": record.pk, "run": record.run_id, "orders": record.n_orders,
            "recall@10": record.metrics.get("all_recall@10"), "ndcg@10": record.metrics.get("all_ndcg@10")}


def train_next_item_model(*, flavor: str, config: dict | None = None, device: str = "cpu",
                          on_epoch: EpochHook | None = None) -> NextItemModel:
    """Train the next-item model on the imported orders and the codes of ``flavor``'s active run: a
    random NEXT_ITEM_HOLDOUT of the orders (the config's seed) is held out and its figures recorded
    (leave-last-out Recall@10 / NDCG@10, warm and cold targets). Recorded whatever happens: a failure
    leaves a failed row with its message."""
    from baskets.core.evaluation import hit_metrics, leave_last_out, split_orders
    from baskets.core.nextitem import NextItemConfig, recommend, save_next_item, train_next_item
    from quantizer.services import active_run

    run = active_run(flavor)
    cfg = NextItemConfig.from_dict({**NextItemConfig().to_dict(), **(config or {})})
    record = NextItemModel.objects.create(run=run, config=cfg.to_dict())
    try:
        baskets, codes, _ = _orders_over_codes(run)
        train_idx, _, test_idx = split_orders(len(baskets), cfg.seed, (1 - NEXT_ITEM_HOLDOUT, 0.0))
        train = [baskets[i] for i in train_idx]
        model = train_next_item(train, codes, cfg, device=device, on_epoch=on_epoch)
        histories, target = leave_last_out([baskets[i] for i in test_idx])
        metrics = {"held_out_orders": len(test_idx)}
        if len(target):
            popularity = np.bincount(np.concatenate(train), minlength=len(codes)) if train else np.zeros(len(codes))
            recs = np.concatenate([recommend(model, histories[lo: lo + 256], 10, device=device, popularity=popularity)
                                   for lo in range(0, len(histories), 256)])
            metrics |= hit_metrics(recs, target, popularity[target] > 0, ks=(10,))
        record.config, record.history, record.metrics = model.config.to_dict(), model.history, metrics
        record.n_orders, record.n_products, record.train_seconds = len(train), len(codes), model.seconds
        record.weights, record.status = save_next_item(model), NextItemModel.Status.SUCCEEDED
    except Exception as exc:
        record.status, record.message = NextItemModel.Status.FAILED, str(exc)[:500]
        record.finished_at = timezone.now()
        record.save()
        raise
    record.finished_at = timezone.now()
    record.save()
    return record
