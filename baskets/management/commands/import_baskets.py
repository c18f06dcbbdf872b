from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from baskets.rows import BasketFileError
from baskets.services import MIN_PAIR_SUPPORT, import_baskets
from jobs.runner import BarProgress


class Command(BaseCommand):
    help = ("Import orders from a CSV order_id,external_id,add_to_cart_order[,reordered] (validated whole first; "
            "the file's orders replace their earlier lines; idempotent), then recompute the co-purchase pairs.")

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, *args, path, **options):
        bar = tqdm(total=100, unit="%", desc="import baskets", disable=options["verbosity"] == 0)
        progress = BarProgress(bar)
        try:
            result = import_baskets(path=path, progress=progress)
        except BasketFileError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        self.stdout.write(
            f"{result.lines} lines in {result.orders} orders: {result.created} created, {result.updated} updated, "
            f"{result.unchanged} unchanged, {result.removed} removed (no longer in their order); "
            f"{result.pairs} co-purchase pairs (bought together in at least {MIN_PAIR_SUPPORT} orders)"
        )
