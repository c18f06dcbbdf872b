"""CoPurchase.above_chance: the lift's one-sided 95% lower bound over the lift of products bought independently in
orders of these sizes. Stored pairs get it from the basket lines here (the formula written out: a migration does
not follow later changes of baskets.core.copurchase); the clusters bought together are ranked the same way at the
next basket import or run activation."""

from django.db import migrations, models

FILL = """
    WITH sizes AS (
        SELECT count(*)::float8 AS lines FROM baskets_basketline GROUP BY order_id
    ), chance AS (
        SELECT count(*) * sum(lines * (lines - 1)) / NULLIF(sum(lines) * (sum(lines) - 1), 0) AS level FROM sizes
    )
    UPDATE baskets_copurchase p
    SET above_chance = p.lift * power(1 - 1 / (9 * p.orders::float8) - 1.645 / (3 * sqrt(p.orders::float8)), 3)
                       / chance.level
    FROM chance
"""


class Migration(migrations.Migration):

    dependencies = [
        ('baskets', '0003_cluster_copurchase'),
    ]

    operations = [
        migrations.AddField(
            model_name='copurchase',
            name='above_chance',
            field=models.FloatField(default=0.0),
            preserve_default=False,
        ),
        migrations.RunSQL(FILL, migrations.RunSQL.noop),
    ]
