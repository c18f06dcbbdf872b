from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.rows import CatalogFileError
from catalog.services import import_catalog
from jobs.runner import BarProgress
from pipeline.services import assign_and_audit


class Command(BaseCommand):
    help = "Import products from a CSV or JSON Lines file (validated whole first; idempotent by external_id)."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument(
            "--overwrite", action="store_true",
            help="also move products whose category was changed since their last import (by a reviewer, an "
                 "admin or the API); without it such rows are kept out and listed as conflicts")
        parser.add_argument(
            "--allow-new-categories", action="store_true",
            help="create the categories the file names that the taxonomy lacks (each is listed); without it an "
                 "unknown path is a row error, with a 'did you mean' for a near miss. A first import into an "
                 "empty taxonomy creates its categories either way")
        parser.add_argument(
            "--allow-uncategorized", action="store_true",
            help="import a row with an empty category_path as a product without a category (the audit "
                 "suggests one, in the Uncategorized queue); without it an empty path is a row error")

    def handle(self, *args, path, overwrite, allow_new_categories, allow_uncategorized, **options):
        bar = tqdm(total=100, unit="%", desc="import", disable=options["verbosity"] == 0)
        progress = BarProgress(bar)
        try:
            result = import_catalog(path=path, progress=progress, overwrite=overwrite,
                                    allow_new_categories=allow_new_categories,
                                    allow_uncategorized=allow_uncategorized)
        except CatalogFileError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        assigned, audits = assign_and_audit(product_ids=result.changed_ids)
        self.stdout.write(
            f"{result.rows} rows: {result.created} created, {result.updated} updated, "
            f"{result.unchanged} unchanged; {result.categories_created} categories created; "
            f"{assigned} semantic IDs assigned by the active run(s)"
            + (f"; audit job(s) {', '.join(f'#{j}' for j in audits)} queued" if audits else "")
        )
        for created in result.created_categories:
            self.stdout.write(f"  new category: {created}")
        if result.conflicts:
            self.stdout.write(self.style.WARNING(
                f"{len(result.conflicts)} row(s) kept out: their products were moved since the last import "
                "(--overwrite to move them anyway)"))
            for conflict in result.conflicts:
                self.stdout.write(f"  {conflict}")
