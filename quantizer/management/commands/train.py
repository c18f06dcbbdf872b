import json

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from jobs.runner import BarProgress, start_job
from catalog.models import Flavor
from quantizer.core import LossConfig, TrainingConfig
from quantizer.models import QuantizerRun
from quantizer.services import create_run, train_run


class Command(BaseCommand):
    help = "Train a quantizer run on the stored embeddings, assign codes, evaluate, and activate it."

    def add_arguments(self, parser):
        parser.add_argument("--flavor", choices=Flavor.values, default=Flavor.PRECISION)
        parser.add_argument("--kind", choices=QuantizerRun.Kind.values, default=QuantizerRun.Kind.RQVAE)
        parser.add_argument("--lambda", dest="contrastive_weight", type=float, default=None,
                            help=f"contrastive weight (default: the recipe's {LossConfig.contrastive_weight}; "
                                 "0 = the lambda=0 baseline)")
        parser.add_argument("--epochs", type=int, default=None)
        parser.add_argument("--max-train", dest="max_train_products", type=int, default=None,
                            help="products the RQ-VAE trains on, a random sample (default "
                                 f"{TrainingConfig.max_train_products:,}; 0 = all); every product is encoded")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--extra-input", default="", metavar="NAME",
                            help='what the run reads beside the text: "copurchase" = each product\'s place among the '
                                 "imported orders (manage.py import_baskets first); default: the text alone")
        parser.add_argument("--no-activate", action="store_true", help="keep the current active run")
        parser.add_argument("--async", dest="run_async", action="store_true", help="queue it on Celery instead")

    def handle(self, *args, flavor, kind, contrastive_weight, epochs, max_train_products, seed, extra_input,
               no_activate, run_async, **options):
        given = {"contrastive_weight": contrastive_weight, "epochs": epochs, "max_train_products": max_train_products}
        overrides = {k: v for k, v in given.items() if v is not None}
        try:
            run = create_run(flavor=flavor, kind=kind, seed=seed, overrides=overrides, extra_input=extra_input)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if run_async:
            job = start_job(kind="train", params={"run_id": run.pk, "activate": not no_activate})
            self.stdout.write(f"queued run #{run.pk} as job #{job.pk}; progress on /runs/")
            return
        bar = tqdm(total=100, desc=f"train #{run.pk}", unit="%")
        try:
            train_run(run=run, progress=BarProgress(bar), activate=not no_activate)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        self.stdout.write(json.dumps({"run": run.pk, "active": run.is_active, "seconds": run.train_seconds,
                                      "churn": run.churn, "metrics": run.metrics}, indent=2, default=str))
