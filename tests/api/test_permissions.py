"""Every endpoint: anonymous is refused, reviewers read and decide, only admins import, train and bulk-decide."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import Job
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
    ("post", "/api/semantic-ids/assign/", {"name": "Feta"}, REVIEWER, 409),  # the fixture run has no weights
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
    missing = client_for().post("/api/token/", {"username": "rita"}, format="json")
    assert response.status_code == 401 and "token" not in response.json()  # the credentials are wrong
    assert missing.status_code == 400 and "password" in missing.json()  # the request is


def test_password_reset_is_not_offered_without_a_mail_server(client, reviewer_user):
    assert client.get("/accounts/password_reset/").status_code == 404
    assert client.post("/accounts/password_reset/", {"email": "rita@example.com"}).status_code == 404
    assert client.get("/accounts/login/").status_code == 200


def token_for(username="rita", password="review-pass-123"):
    return client_for().post("/api/token/", {"username": username, "password": password}, format="json")


def with_token(key):
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_a_token_expires_and_a_new_one_is_handed_out(reviewer_user, settings):
    from datetime import timedelta

    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    first = token_for().json()
    assert with_token(first["token"]).get("/api/flags/").status_code == 200
    Token.objects.filter(key=first["token"]).update(created=timezone.now() - timedelta(hours=settings.SEMID_TOKEN_TTL_HOURS + 1))

    expired = with_token(first["token"]).get("/api/flags/")

    assert expired.status_code == 401 and "token expired" in expired.json()["detail"]
    second = token_for().json()
    assert second["token"] != first["token"] and with_token(second["token"]).get("/api/flags/").status_code == 200


def test_logout_and_a_password_change_revoke_the_token(reviewer_user, client):
    key = token_for().json()["token"]
    client.force_login(reviewer_user)
    client.post("/accounts/logout/")
    assert with_token(key).get("/api/flags/").status_code == 401

    key = token_for().json()["token"]
    reviewer_user.set_password("a-new-pass-789")
    reviewer_user.save()
    assert with_token(key).get("/api/flags/").status_code == 401
    assert token_for(password="a-new-pass-789").status_code == 200


def test_wrong_passwords_lock_the_username_out_of_the_token_endpoint_and_the_login_page(reviewer_user, client, settings):
    statuses = [token_for(password="guess").status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert statuses == [401] * (settings.AXES_FAILURE_LIMIT - 1) + [429]  # the last wrong one locks the name out

    locked = token_for()  # the right password, refused while locked out
    assert locked.status_code == 429 and "token" not in locked.json()
    page = client.post("/accounts/login/", {"username": "rita", "password": "review-pass-123"})
    assert page.status_code == 429 and "_auth_user_id" not in client.session
    assert token_for(username="admin-nobody", password="x").status_code == 401  # another username is not locked
