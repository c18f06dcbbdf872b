import json as jsonlib

from django.core.management.base import BaseCommand, CommandError

from catalog.models import Flavor
from quantizer.services import NoActiveRun, active_run


class Command(BaseCommand):
    help = "The active run's intrinsic metrics (DESIGN.md section 8)."

    def add_arguments(self, parser):
        parser.add_argument("--flavor", choices=Flavor.values, help="default: every flavor with an active run")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, flavor=None, json=False, **options):
        out = {}
        for name in [flavor] if flavor else Flavor.values:
            try:
                run = active_run(name)
            except NoActiveRun as exc:
                if flavor:
                    raise CommandError(str(exc)) from None
                continue
            out[name] = {"run": run.pk, "kind": run.kind, "config": run.config, "metrics": run.metrics,
                         "churn": run.churn, "train_seconds": run.train_seconds}
        if not out:
            raise CommandError("no active run: run python manage.py pipeline first")
        if json:
            self.stdout.write(jsonlib.dumps(out, indent=2, sort_keys=True))
        else:
            for name, data in out.items():
                self.stdout.write(f"{name} (run #{data['run']}):")
                for key, value in sorted(data["metrics"].items()):
                    self.stdout.write(f"  {key}: {value}")
