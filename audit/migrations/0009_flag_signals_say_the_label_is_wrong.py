"""Flags stored each signal's probability of the label under `evidence.signals`, where the flag page and the API
read how strongly the signal says the label is wrong: 1 minus it. Flags raised from now on store that; this
turns the stored ones round, and empties them on flags without a label (no label for a signal to call wrong).
Reversible: the turn is its own inverse; the emptied ones stay empty."""

from django.db import migrations

TURN_SIGNALS = """
    UPDATE audit_flag
    SET evidence = jsonb_set(evidence, '{signals}', (
        SELECT coalesce(jsonb_object_agg(key, round(1 - value::numeric, 4)), '{}'::jsonb)
        FROM jsonb_each_text(evidence -> 'signals')))
    WHERE label_id IS NOT NULL AND jsonb_typeof(evidence -> 'signals') = 'object'
"""
EMPTY_UNLABELLED = """
    UPDATE audit_flag SET evidence = jsonb_set(evidence, '{signals}', '{}'::jsonb)
    WHERE label_id IS NULL AND jsonb_typeof(evidence -> 'signals') = 'object'
"""


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0008_scores_without_constraints"),
    ]

    operations = [
        migrations.RunSQL([TURN_SIGNALS, EMPTY_UNLABELLED], reverse_sql=[TURN_SIGNALS]),
    ]
