from django.core.management.base import BaseCommand, CommandError

from audit.exports import AUDIT_HEADER, audit_rows
from audit.models import Score
from catalog.exports import ExportWriter
from catalog.models import Flavor
from quantizer.services import NoActiveRun, active_run


class Command(BaseCommand):
    help = "CSV external_id,label_path,suggested_path,confidence,flagged: one row per scored product."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--flavor", choices=Flavor.values, default=Flavor.PRECISION)

    def handle(self, *args, path, flavor, **options):
        try:
            run = active_run(flavor)
        except NoActiveRun as exc:
            raise CommandError(str(exc)) from None
        if not Score.objects.filter(run=run).exists():
            raise CommandError(f"run #{run.pk} has not been audited: run python manage.py pipeline --flavor {flavor}")
        n = 0
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = ExportWriter(handle)
            writer.writerow(AUDIT_HEADER)
            for row in audit_rows(run=run):
                writer.writerow(row)
                n += 1
        self.stdout.write(f"{n} rows written to {path}")
