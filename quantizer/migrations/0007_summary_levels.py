# Written by hand: the cluster summaries' triggers and their rebuild can stop at / start from a level.

import importlib

from django.db import migrations

summaries = importlib.import_module("quantizer.migrations.0003_cluster_summaries")

# The levels the triggers keep, from the session setting semid.summary_levels (unset or '': every level). A run's
# codes are written with levels 1-2 kept (quantizer.services.write_codes) and its deeper levels rebuilt beside
# the audit (quantizer.clusters.rebuild_cluster_summaries with first_level 3).
LEVELS = "COALESCE(NULLIF(current_setting('semid.summary_levels', true), '')::integer, 32767)"
EVERY_LEVEL = "generate_series(1, cardinality(src.codes))"
assert EVERY_LEVEL in summaries.APPLY
APPLY_BOUNDED = summaries.APPLY.replace(EVERY_LEVEL, "generate_series(1, least(cardinality(src.codes), levels))")


def trigger_function(name: str, apply: str, source: str, levels: bool) -> str:
    declare = f"emptied bigint[];\n    levels integer := {LEVELS};" if levels else "emptied bigint[];"
    return (f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"DECLARE {declare}\nBEGIN\n{apply.format(source=source)}\n    RETURN NULL;\nEND $$")


def _from_level(sql: str) -> str:
    """0003's rebuild with a first level: the levels below it are kept."""
    for old, new in [
        ("quantizer_rebuild_cluster_summaries(target bigint)",
         "quantizer_rebuild_cluster_summaries(target bigint, first_level integer DEFAULT 1)"),
        (f"DELETE FROM {summaries.SUMMARY} WHERE run_id = target;",
         f"DELETE FROM {summaries.SUMMARY} WHERE run_id = target AND level >= first_level;"),
        ("FOR lv IN 1..", "FOR lv IN first_level.."),
    ]:
        assert sql.count(old) == 1, old
        sql = sql.replace(old, new)
    return sql


REBUILD_FROM = _from_level(summaries.REBUILD)


class Migration(migrations.Migration):

    dependencies = [
        ('quantizer', '0006_run_input_rows'),
    ]

    operations = [
        migrations.RunSQL(
            [trigger_function(name, APPLY_BOUNDED, source, True) for name, _, _, _, source in summaries.TRIGGERS],
            reverse_sql=[trigger_function(name, summaries.APPLY, source, False)
                         for name, _, _, _, source in summaries.TRIGGERS],
        ),
        migrations.RunSQL(
            ["DROP FUNCTION quantizer_rebuild_cluster_summaries(bigint)", REBUILD_FROM],
            reverse_sql=["DROP FUNCTION quantizer_rebuild_cluster_summaries(bigint, integer)", summaries.REBUILD],
        ),
    ]
