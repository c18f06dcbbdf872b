import json

from django.core.management.base import BaseCommand, CommandError

from baskets.services import NoBaskets, train_next_item_model
from catalog.models import Flavor
from quantizer.services import NoActiveRun


class Command(BaseCommand):
    help = ("Train the 'customers may add next' model (a transformer that decodes the next product's semantic ID) "
            "on the imported baskets and the codes of the flavor's active run; the run is recorded with its "
            "config, history, held-out figures and weights (baskets.NextItemModel).")

    def add_arguments(self, parser):
        parser.add_argument("--flavor", default=Flavor.PRECISION, choices=Flavor.values)
        parser.add_argument("--epochs", type=int, default=None)
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--device", default="cpu")
        parser.add_argument("--config", default="{}", help="JSON overrides of baskets.core.nextitem.NextItemConfig")

    def handle(self, *args, flavor, epochs, seed, device, config, **options):
        overrides = json.loads(config)
        if epochs is not None:
            overrides["epochs"] = epochs
        if seed is not None:
            overrides["seed"] = seed

        def on_epoch(epoch, total, row):
            if options["verbosity"]:
                self.stdout.write(f"epoch {epoch}/{total}: loss {row['loss']:.4f}")

        try:
            record = train_next_item_model(flavor=flavor, config=overrides, device=device, on_epoch=on_epoch)
        except (NoBaskets, NoActiveRun, ValueError) as exc:
            raise CommandError(str(exc)) from None
        m = record.metrics
        figures = (f"held out {m['held_out_orders']} orders: Recall@10 {m['all_recall@10']:.3f}, NDCG@10 "
                   f"{m['all_ndcg@10']:.3f}" if m.get("all_recall@10") is not None else "no held-out basket")
        self.stdout.write(f"next-item model #{record.pk} on run #{record.run_id} ({flavor}): {record.n_orders} orders, "
                          f"{record.n_products} products, {record.train_seconds:.1f} s; {figures}")
