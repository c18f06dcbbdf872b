import secrets

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.roles import ensure_roles
from catalog.demo import generate_demo_catalog, write_csv
from catalog.models import Product
from catalog.services import import_catalog

DEMO_USERS = (("admin", "admin", True), ("reviewer", "reviewer", False), ("reviewer2", "reviewer", False))


class Command(BaseCommand):
    help = ("Apply migrations, create roles and demo users (passwords printed once) and load the generated "
            "demo catalog.")

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
        if Product.objects.exists():
            # Seeded once: reviewers' decisions since then belong to them, not to the generated file.
            self.stdout.write(f"demo catalog: kept the {Product.objects.count()} products already loaded")
            return
        path = settings.SEMID_HOME / "demo" / "demo_catalog.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(generate_demo_catalog(), path)
        result = import_catalog(path=path)
        self.stdout.write(f"demo catalog: {result.rows} rows, {result.created} created")
