"""Every endpoint: anonymous is refused, reviewers read and decide, only admins import, train and bulk-decide."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import Job
from tests.api.conftest import client_for

REVIEWER, ADMIN, ANY_USER = "reviewer", "admin", "any"

# (method, path, body, who may, the status when allowed)
ENDPOINTS = [
    ("get", "/api/products/", None, REVIEWER, 200),
    ("get", "/api/products/{parmesan}/", None, REVIEWER, 200),
    ("get", "/api/products/{parmesan}/similar/", None, REVIEWER, 200),
    ("get", "/api/categories/", None, REVIEWER, 200),
    ("get", "/api/categories/{cheese}/", None, REVIEWER, 200),
    ("get", "/api/semantic-ids/?product={parmesan}", None, REVIEWER, 200),
    ("get", "/api/semantic-ids/?prefix=6_19", None, REVIEWER, 200),
    ("post", "/api/semantic-ids/assign/", {"name": "Feta"}, REVIEWER, 400),  # the fixture run has no weights
    ("get", "/api/flags/", None, REVIEWER, 200),
    ("get", "/api/flags/{flag}/", None, REVIEWER, 200),
    ("post", "/api/flags/claim/", {}, REVIEWER, 200),
    ("post", "/api/flags/{flag}/claim/", None, REVIEWER, 200),
    ("post", "/api/flags/{flag}/decide/", {"action": "comment", "note": "looks odd"}, REVIEWER, (201, 409)),
    ("post", "/api/flags/undo/", {"count": 1}, REVIEWER, 200),
    ("post", "/api/flags/bulk/", {"ids": ["{flag}"], "action": "reject"}, ADMIN, 200),
    ("get", "/api/decisions/", None, REVIEWER, 200),
    ("get", "/api/queues/", None, REVIEWER, 200),
    ("get", "/api/runs/", None, REVIEWER, 200),
    ("get", "/api/runs/{run}/", None, REVIEWER, 200),
    ("post", "/api/runs/", {"flavor": "precision"}, ADMIN, 202),
    ("post", "/api/runs/{run}/activate/", None, ADMIN, 200),
    ("post", "/api/imports/", "file", ADMIN, 202),
    ("get", "/api/jobs/", None, ADMIN, 200),
    ("get", "/api/jobs/{job}/", None, ADMIN, 200),
    ("get", "/api/schema/", None, ANY_USER, 200),
    ("get", "/api/docs/", None, ANY_USER, 200),
]
ROLES = ["anonymous", "norole", REVIEWER, ADMIN]
ALLOWED = {
    ANY_USER: {"norole", REVIEWER, ADMIN},
    REVIEWER: {REVIEWER, ADMIN},
    ADMIN: {ADMIN},
}


@pytest.fixture
def users(admin_user, reviewer_user):
    from django.contrib.auth.models import User

    return {"anonymous": None, "norole": User.objects.create_user("nora", password="x-pass-123"),
            REVIEWER: reviewer_user, ADMIN: admin_user}


def _fill(value, ids):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [int(_fill(v, ids)) if isinstance(v, str) and v.startswith("{") else _fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body", "who", "ok"), ENDPOINTS,
                         ids=[f"{m.upper()} {p}" for m, p, *_ in ENDPOINTS])
def test_endpoint_permissions(catalog, users, role, method, path, body, who, ok, settings, tmp_path):
    settings.SEMID_HOME = tmp_path
    job = Job.objects.create(kind="import", params={})
    ids = {"parmesan": catalog.products["parmesan"].pk, "cheese": catalog.categories["Dairy > Cheese"].pk,
           "flag": catalog.flags["parmesan"].pk, "run": catalog.run.pk, "job": job.pk}
    client = client_for(users[role])
    url = _fill(path, ids)
    if body == "file":
        upload = SimpleUploadedFile("catalog.csv", b"external_id,name,category_path\nX1,Feta,Dairy > Cheese\n")
        response = client.post(url, {"file": upload}, format="multipart")
    elif method == "post":
        response = client.post(url, _fill(body, ids), format="json")
    else:
        response = client.get(url)

    if role in ALLOWED[who]:
        expected = ok if isinstance(ok, tuple) else (ok,)
        assert response.status_code in expected, response.content[:500]
    else:
        assert response.status_code in (401, 403), response.content[:500]


def test_token_auth_reaches_the_api(reviewer_user, catalog):
    anonymous = client_for()
    response = anonymous.post("/api/token/", {"username": "rita", "password": "review-pass-123"}, format="json")
    assert response.status_code == 200
    anonymous.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")

    assert anonymous.get("/api/flags/").status_code == 200
    assert anonymous.post("/api/flags/bulk/", {"ids": [catalog.flags["parmesan"].pk], "action": "reject"},
                          format="json").status_code == 403


def test_wrong_password_gets_no_token(reviewer_user):
    response = client_for().post("/api/token/", {"username": "rita", "password": "nope"}, format="json")
    assert response.status_code == 400


def test_password_reset_is_not_offered_without_a_mail_server(client, reviewer_user):
    assert client.get("/accounts/password_reset/").status_code == 404
    assert client.post("/accounts/password_reset/", {"email": "rita@example.com"}).status_code == 404
    assert client.get("/accounts/login/").status_code == 200
