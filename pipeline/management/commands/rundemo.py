import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from config import embedded
from jobs.runner import queue_for, start_job
from pipeline.services import missing_flavors, missing_next_item_flavor


class Command(BaseCommand):
    help = "Run a Celery worker and the web server together; queue the pipeline where no run is active. Ctrl-C stops all."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, port, **options):
        logs = settings.SEMID_HOME / "logs"
        logs.mkdir(exist_ok=True)
        worker_log = open(logs / "worker.log", "a")

        # Two workers: one for the heavy jobs (embed, train, audit, pipeline), one for the short ones
        # (imports), so an import never waits behind a training run.
        queues = {"heavy": queue_for("pipeline"), "short": queue_for("import")}

        def start_worker(name):
            return subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "INFO",
                 "--without-gossip", "--without-mingle", "-Q", queues[name], "-n", f"{name}@%h"],
                stdout=worker_log, stderr=subprocess.STDOUT,
            )

        workers = {name: start_worker(name) for name in queues}
        self.stdout.write(f"workers started (log: {logs / 'worker.log'})")
        flavors = missing_flavors()
        if flavors:  # its end queues the next-item model on the demo's orders
            job = start_job(kind="pipeline", params={"flavors": flavors, "seed": 0})
            self.stdout.write(f"queued pipeline job #{job.pk} for {', '.join(flavors)}; progress on /runs/")
        elif flavor := missing_next_item_flavor():  # a demo from before it had orders, or whose model failed
            job = start_job(kind="next_item", params={"flavor": flavor})
            self.stdout.write(f"queued next-item model job #{job.pk} on the {flavor} run's codes; progress on /runs/")
        self.stdout.write(self.style.SUCCESS(f"semid at http://127.0.0.1:{port}  (Ctrl-C stops everything)"))
        server = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"])
        def interrupt(signum, frame):  # `kill`, `docker stop`: stop everything, as Ctrl-C does
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)
        try:
            while server.poll() is None:
                for name, worker in workers.items():
                    if worker.poll() is not None:  # killed, out of memory: the demo keeps going
                        self.stdout.write(self.style.WARNING(
                            f"the {name} worker stopped (exit {worker.returncode}); starting another. Its job is "
                            "marked failed within a minute and can be retried from its page."))
                        workers[name] = start_worker(name)
                if settings.SEMID_EMBEDDED_POSTGRES and not embedded.postgres_running(settings.SEMID_HOME):
                    self.stdout.write(self.style.WARNING(
                        "the embedded PostgreSQL stopped; starting it again (requests meanwhile answer 503)"))
                    embedded.start_postgres(settings.SEMID_HOME, settings.DATABASES["default"]["NAME"])
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            self.stdout.write("stopping the web server, the worker and the embedded services...")
            if server.poll() is None:
                server.terminate()
            for worker in workers.values():
                if worker.poll() is None:
                    # Cold shutdown: stop now rather than after the running task. A pipeline cut short
                    # leaves the active runs as they were; the next start queues it again (--if-missing).
                    worker.send_signal(signal.SIGQUIT)
            for child in [server, *workers.values()]:
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
            worker_log.close()
            call_command("services", "stop")
