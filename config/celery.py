import os

from celery import Celery
from celery.signals import celeryd_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

# DjangoTask adds delay_on_commit: a worker never reads rows that are not committed yet.
app = Celery("semid", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@celeryd_init.connect
def start_embedded_services(**kwargs):
    """A worker starts the embedded servers it uses (where no URL is set) before it connects to them."""
    from config.embedded import start_services

    start_services()
