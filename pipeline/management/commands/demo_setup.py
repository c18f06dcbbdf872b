import secrets

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.roles import ensure_roles
from baskets.models import BasketLine
from baskets.rows import BasketFileError
from baskets.services import MIN_PAIR_SUPPORT, import_baskets
from catalog.demo import generate_demo_catalog, generate_demo_orders, write_csv, write_orders_csv
from catalog.models import Product
from catalog.services import import_catalog

DEMO_USERS = (("admin", "admin", True), ("reviewer", "reviewer", False), ("reviewer2", "reviewer", False))


class Command(BaseCommand):
    help = ("Apply migrations, create roles and demo users (passwords printed once) and load the generated "
            "demo catalog and its orders.")

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)  # a fresh SEMID_HOME has an empty database
        groups = ensure_roles()
        for username, role, staff in DEMO_USERS:
            if User.objects.filter(username=username).exists():
                self.stdout.write(f"user {username!r} exists (its password was printed when it was created)")
                continue
            password = secrets.token_urlsafe(9)
            user = User.objects.create_user(username, password=password, is_staff=staff, is_superuser=staff)
            user.groups.add(groups[role])
            self.stdout.write(self.style.SUCCESS(f"created {role} login: {username} / {password}"))
        folder = settings.SEMID_HOME / "demo"
        folder.mkdir(parents=True, exist_ok=True)
        catalog = generate_demo_catalog()
        if Product.objects.exists():
            # Seeded once: reviewers' decisions since then belong to them, not to the generated file.
            self.stdout.write(f"demo catalog: kept the {Product.objects.count()} products already loaded")
        else:
            result = import_catalog(path=write_csv(catalog, folder / "demo_catalog.csv"))
            self.stdout.write(f"demo catalog: {result.rows} rows, {result.created} created")
        self._seed_orders(catalog, folder)

    def _seed_orders(self, catalog, folder) -> None:
        """The demo catalog's orders ("Goes well with", the clusters bought together, the next-item model), once:
        also into a demo database from before the demo had orders. All or nothing: a catalog that is not the
        demo's (products renamed or gone) gets none, and says why."""
        if BasketLine.objects.exists():
            self.stdout.write(f"demo orders: kept the {BasketLine.objects.count()} order lines already loaded")
            return
        try:
            orders = import_baskets(path=write_orders_csv(generate_demo_orders(catalog), folder / "demo_orders.csv"))
        except BasketFileError as exc:
            self.stdout.write(self.style.WARNING(
                f"demo orders: not loaded, this catalog is not the demo's ({len(exc.errors)} lines name products "
                f"it does not hold, e.g. {exc.errors[0]})"))
            return
        self.stdout.write(f"demo orders: {orders.orders} orders, {orders.lines} lines, "
                          f"{orders.pairs} pairs bought together in at least {MIN_PAIR_SUPPORT} orders")
