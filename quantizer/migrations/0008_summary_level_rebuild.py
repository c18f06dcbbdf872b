# Written by hand: a run's clusters rebuilt one level at a time, so that its levels can be rebuilt side by side,
# each in its own transaction (quantizer.clusters.rebuild_cluster_summaries), in place of 0007's rebuild from a
# level; and the triggers return at once where semid.summary_levels is 0 (codes written with no level kept, every
# level rebuilt after: quantizer.services).

import importlib

from django.db import migrations

summaries = importlib.import_module("quantizer.migrations.0003_cluster_summaries")
levels = importlib.import_module("quantizer.migrations.0007_summary_levels")

# 0003's statement for one level (the loop's body), as it is
INSERT_LEVEL = summaries.REBUILD[summaries.REBUILD.index("        INSERT INTO"):summaries.REBUILD.index("GROUP BY codes;")]
INSERT_LEVEL += "GROUP BY codes;"

REBUILD_LEVEL = f"""
CREATE FUNCTION quantizer_rebuild_cluster_level(target bigint, lv integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    written integer;
BEGIN
    DELETE FROM {summaries.SUMMARY} WHERE run_id = target AND level = lv;
{INSERT_LEVEL}
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END $$
"""


def returns_at_no_level(name: str, source: str, apply: str = levels.APPLY_BOUNDED) -> str:
    """0007's trigger function (or one with another body, `apply`), returning before its statement when no level
    is kept."""
    sql = levels.trigger_function(name, apply, source, True)
    assert sql.count("BEGIN\n") == 1
    return sql.replace("BEGIN\n", "BEGIN\n    IF levels = 0 THEN\n        RETURN NULL;\n    END IF;\n")


class Migration(migrations.Migration):

    dependencies = [
        ('quantizer', '0007_summary_levels'),
    ]

    operations = [
        migrations.RunSQL(
            # the rebuild of every level from one is the level's, level by level, in Python now: one way
            [REBUILD_LEVEL, "DROP FUNCTION quantizer_rebuild_cluster_summaries(bigint, integer)"],
            reverse_sql=[levels.REBUILD_FROM, "DROP FUNCTION quantizer_rebuild_cluster_level(bigint, integer)"],
        ),
        migrations.RunSQL(
            [returns_at_no_level(name, source) for name, _, _, _, source in summaries.TRIGGERS],
            reverse_sql=[levels.trigger_function(name, levels.APPLY_BOUNDED, source, True)
                         for name, _, _, _, source in summaries.TRIGGERS],
        ),
    ]
