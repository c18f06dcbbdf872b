"""The Job model now belongs to the jobs app (jobs 0001 takes over its table): only the state changes."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0003_embedding_flavor_text"),
        ("jobs", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="Job")], database_operations=[]),
    ]
