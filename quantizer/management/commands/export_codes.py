from django.core.management.base import BaseCommand, CommandError

from catalog.exports import ExportWriter
from quantizer.models import SemanticId


class Command(BaseCommand):
    help = "CSV external_id,flavor,semantic_id for the active run(s)."

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, *args, path, **options):
        rows = (
            SemanticId.objects.filter(run__is_active=True)
            .order_by("run__flavor", "product__external_id")
            .values_list("product__external_id", "run__flavor", "code", "token")
        )
        if not rows.exists():
            raise CommandError("no active run: run python manage.py pipeline first")
        n = 0
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = ExportWriter(handle)
            writer.writerow(["external_id", "flavor", "semantic_id"])
            for external_id, flavor, code, token in rows.iterator(chunk_size=5000):
                writer.writerow([external_id, flavor, f"{code}_{token}" if token else code])
                n += 1
        self.stdout.write(f"{n} rows written to {path}")
