from django.conf import settings
from django.core.management.base import BaseCommand

from config import embedded


class Command(BaseCommand):
    help = ("Status or stop of the embedded PostgreSQL and Redis under SEMID_HOME (manage.py, the worker and the web "
            "server start them).")

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["status", "stop"])

    def handle(self, *args, action, **options):
        home = settings.SEMID_HOME
        if action == "status":
            self.stdout.write(f"SEMID_HOME={home}\ndatabase={settings.DATABASES['default'].get('HOST')}\nredis={settings.REDIS_URL}")
            return
        from django.db import connections

        connections.close_all()
        stopped = [name for name, stop in (("redis", embedded.stop_redis), ("postgres", embedded.stop_postgres)) if stop(home)]
        self.stdout.write(f"stopped: {', '.join(stopped) or 'nothing was running'}")
