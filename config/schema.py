"""The OpenAPI schema declares every answer an operation can give, errors included.

drf-spectacular documents the success codes and what a view declares with `extend_schema`; the errors
every view can answer come from here: 400 (bad parameters or body), 401 (no or expired token),
403 (the role may not), 404 (no such object, or a page past the end), 503 (database unavailable,
config.middleware), and 415 for a body of the wrong type. An error body is an object: `detail`, or one list of messages per field.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema

ERROR_BODY = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": {},  # a field's messages: a list, or per item of a list field
}
ERRORS = {
    "400": "Invalid parameters or body: `detail`, or the messages per field",
    "401": "No token or session, or an expired or revoked token",
    "403": "Your role may not do this",
    "404": "No such object, or a page past the last one",
    "503": "The database is unavailable for a moment; nothing was saved, try again (Retry-After)",
}
BODY_ERRORS = {"415": "The body is not of a declared content type, or cannot be parsed as one"}


class AutoSchema(SpectacularAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        errors = {**ERRORS, **(BODY_ERRORS if self.method in ("POST", "PUT", "PATCH") else {})}
        for code, description in sorted(errors.items()):
            responses.setdefault(code, {
                "description": description, "content": {"application/json": {"schema": ERROR_BODY}}})
        return responses
