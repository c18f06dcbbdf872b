import json

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.models import Flavor
from jobs.runner import BarProgress, start_job
from pipeline.services import missing_flavors, run_pipeline
from quantizer.inputs import check_extra_input


class Command(BaseCommand):
    help = "embed -> train -> assign -> evaluate -> audit, for one flavor or both."

    def add_arguments(self, parser):
        parser.add_argument("--flavor", choices=Flavor.values, help="default: both flavors")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--async", dest="run_async", action="store_true", help="queue it on Celery instead")
        parser.add_argument("--if-missing", action="store_true", help="only flavors without an active run")
        parser.add_argument("--extra-input", default="", metavar="NAME",
                            help='what the runs read beside the text: "copurchase" = each product\'s place among the '
                                 "imported orders (manage.py import_baskets first); default: the text alone")

    def handle(self, *args, flavor=None, seed=0, run_async=False, if_missing=False, extra_input="", **options):
        try:
            check_extra_input(extra_input)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        flavors = [flavor] if flavor else list(Flavor.values)
        if if_missing:
            flavors = [f for f in flavors if f in missing_flavors()]
            if not flavors:
                self.stdout.write("every flavor has an active run; nothing to do")
                return
        if run_async:
            job = start_job(kind="pipeline", params={"flavors": flavors, "seed": seed, "extra_input": extra_input})
            self.stdout.write(f"queued pipeline job #{job.pk} for {', '.join(flavors)}; progress on /runs/")
            return
        bar = tqdm(total=100, desc="pipeline", unit="%")
        try:
            report = run_pipeline(flavors=flavors, seed=seed, progress=BarProgress(bar), extra_input=extra_input)
        except ValueError as exc:  # e.g. reading the orders with none imported
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        self.stdout.write(json.dumps(report, indent=2))
