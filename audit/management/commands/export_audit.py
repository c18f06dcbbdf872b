from django.core.management.base import BaseCommand, CommandError

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
        rows = (
            Score.objects.filter(run=run)
            .order_by("product__external_id")
            .values_list("product__external_id", "label__path", "suggested__path", "confidence", "flagged")
        )
        if not rows.exists():
            raise CommandError(f"run #{run.pk} has not been audited: run python manage.py pipeline --flavor {flavor}")
        n = 0
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = ExportWriter(handle)
            writer.writerow(["external_id", "label_path", "suggested_path", "confidence", "flagged"])
            for external_id, label, suggested, confidence, flagged in rows.iterator(chunk_size=5000):
                # repr of the float: as many distinct values as the scorer's raw score (the ranking survives)
                writer.writerow([external_id, label or "", suggested or "", repr(confidence), int(flagged)])
                n += 1
        self.stdout.write(f"{n} rows written to {path}")
