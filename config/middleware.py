"""A database that is down or restarting answers 503 "try again", never a 500 traceback.

Connections are persistent and health-checked (settings: CONN_MAX_AGE, CONN_HEALTH_CHECKS), so the
first request after PostgreSQL comes back reconnects. A request that meets the outage itself gets
503 with Retry-After: JSON under /api/, otherwise a page that says nothing was saved (a form post) or
reloads itself (a page view). The failed transaction was rolled back, so trying again is safe.
"""

from __future__ import annotations

import logging
import sys

from django.db import InterfaceError, OperationalError, connections
from django.http import HttpResponse, JsonResponse
from django.template import loader
from django.core.signals import got_request_exception

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
UNAVAILABLE = "The database is unavailable for a moment. Nothing was saved; try again in a few seconds."


def unavailable_response(request):
    """The 503 for a request that met a database outage."""
    for conn in connections.all(initialized_only=True):
        conn.close_if_unusable_or_obsolete()  # a broken connection is not handed to the next request
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": UNAVAILABLE}, status=503)
    else:
        safe = request.method in ("GET", "HEAD")
        # rendered without the request: the context processors would query the database that is down
        page = loader.render_to_string("503.html", {"message": UNAVAILABLE, "reload": safe,
                                                    "retry_after": RETRY_AFTER_SECONDS})
        response = HttpResponse(page, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _remember_database_error(sender, request=None, **kwargs):
    """got_request_exception: keep the error on the request when the database caused it (sent by
    Django wherever the exception was raised: a view, an API view or another middleware)."""
    error = sys.exc_info()[1]
    if request is not None and isinstance(error, (OperationalError, InterfaceError)):
        request.database_error = error


got_request_exception.connect(_remember_database_error, dispatch_uid="semid-database-error")


class DatabaseUnavailableMiddleware:
    """Outermost: turns the 500 of a request that met a database outage into the 503."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        error = getattr(request, "database_error", None)
        if response.status_code == 500 and error is not None:
            log.warning("database unavailable on %s %s: %s", request.method, request.path, error)
            return unavailable_response(request)
        return response
