# Written by hand: the cluster summaries' triggers plan their statement each time they fire (EXECUTE), with the
# sizes of that statement's transition tables. PL/pgSQL keeps a static statement's plan for the session: once the
# plan cache had settled on the plan made for a few updates of no rows (an import's UPDATE that changes nothing, a
# re-import), it joined the old and new rows of an update of tens of thousands (a file that moves every product,
# a bulk decision) by a nested loop: 10,000 moves took 12.3 s in the trigger instead of 2 ms, 49,688 took minutes
# (bench/import_catalog.py's "moves" pass, docs/benchmarks.md, "Import"). Planning once a statement costs
# about a millisecond.

import importlib

from django.db import migrations

summaries = importlib.import_module("quantizer.migrations.0003_cluster_summaries")
levels = importlib.import_module("quantizer.migrations.0007_summary_levels")
level_rebuild = importlib.import_module("quantizer.migrations.0008_summary_level_rebuild")

# 0007's body of a trigger function, the statement that applies the changes into `emptied` run by EXECUTE (`levels`
# passed as $1), then the DELETE
STATEMENT_END = "SELECT array_agg(id) INTO emptied FROM written WHERE size <= 0;"
assert levels.APPLY_BOUNDED.count(STATEMENT_END) == 1 and levels.APPLY_BOUNDED.count("levels)") == 1
HEAD, TAIL = levels.APPLY_BOUNDED.split(STATEMENT_END)
assert "$q$" not in HEAD
PLANNED_PER_STATEMENT = (f"    EXECUTE $q$\n{HEAD.replace('levels)', '$1)')}SELECT array_agg(id) FROM written WHERE size <= 0"
                         f"\n    $q$ INTO emptied USING levels;{TAIL}")


class Migration(migrations.Migration):

    dependencies = [
        ('quantizer', '0008_summary_level_rebuild'),
    ]

    operations = [
        migrations.RunSQL(
            [level_rebuild.returns_at_no_level(name, source, PLANNED_PER_STATEMENT)
             for name, _, _, _, source in summaries.TRIGGERS],
            reverse_sql=[level_rebuild.returns_at_no_level(name, source) for name, _, _, _, source in summaries.TRIGGERS],
        ),
    ]
