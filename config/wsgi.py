import os

from django.core.wsgi import get_wsgi_application

from config.embedded import start_services

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
start_services()  # the embedded servers where no URL is set (the demo, a local gunicorn); nothing in production
application = get_wsgi_application()
