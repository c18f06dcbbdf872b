"""The team view's figures: decisions per reviewer today and this week, second-review agreement, a queue's
burn-down counted back through the decision times; and its CSV downloads, neutralised like every export."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import Decision, Flag, Score
from audit.review.claims import claim_flag
from audit.review.decisions import decide_flag, undo_last_decisions
from audit.selectors import queue_burndown, reviewer_activity
from tests.conftest import make_user
from tests.ui.conftest import build_review_data

WEDNESDAY = date(2025, 12, 3)  # in the past: undo takes the latest decision


@pytest.fixture(autouse=True)
def no_random_second_reviews(settings):
    settings.SEMID_SECOND_REVIEW_SHARE = 0.0


def decide(flag, reviewer, action="reject", note="") -> Decision:
    claim_flag(flag=flag, reviewer=reviewer)
    return decide_flag(flag=flag, reviewer=reviewer, action=action, note=note)


def at(decision: Decision, day: date, hour: int = 10) -> None:
    Decision.objects.filter(pk=decision.pk).update(created_at=timezone.make_aware(datetime(day.year, day.month, day.day, hour)))


def test_decisions_per_reviewer_today_and_this_week_and_their_agreement(reviewer_user, tmp_path):
    flags = build_review_data(tmp_path)["flags"]
    rob = make_user("rob", "reviewer", "pass-12345")
    at(decide(flags[0], reviewer_user), WEDNESDAY)
    at(decide(flags[1], reviewer_user), WEDNESDAY)
    at(decide(flags[2], reviewer_user, note="x"), WEDNESDAY - timedelta(days=1))
    at(decide(flags[3], reviewer_user), WEDNESDAY - timedelta(days=7))  # last week
    undone = decide(flags[4], reviewer_user)
    undo_last_decisions(reviewer=reviewer_user)  # an undone decision is no work done
    at(undone, WEDNESDAY)
    claim_flag(flag=flags[4], reviewer=reviewer_user)
    decide_flag(flag=flags[4], reviewer=reviewer_user, action="comment", note="looked at it")
    at(decide(flags[5], rob), WEDNESDAY - timedelta(days=2))  # Monday
    for flag, verdict in ((flags[0], "accept"), (flags[1], "reject")):  # rob agrees with one of rita's, not the other
        Flag.objects.filter(pk=flag.pk).update(needs_second_review=True)
        at(decide(flag, rob, action=verdict), WEDNESDAY)

    rows = {r["reviewer"]: r for r in reviewer_activity(today=WEDNESDAY)}

    assert rows["rita"] == {"reviewer": "rita", "today": 2, "week": 3, "second_week": 0, "checked": 2, "agreement": 0.5}
    assert rows["rob"] == {"reviewer": "rob", "today": 0, "week": 1, "second_week": 2, "checked": 0, "agreement": None}
    assert [r["reviewer"] for r in reviewer_activity(today=WEDNESDAY)] == ["rita", "rob"]


def test_burndown_counts_open_flags_back_through_the_decision_times(reviewer_user, tmp_path):
    flags = build_review_data(tmp_path)["flags"]
    today = timezone.localdate()
    Flag.objects.update(created_at=timezone.now() - timedelta(days=10))
    for flag in flags[:2]:
        at(decide(flag, reviewer_user), today - timedelta(days=3))
    decide(flags[2], reviewer_user)
    undo_last_decisions(reviewer=reviewer_user)  # closed and reopened today
    decide(flags[3], reviewer_user, action="defer")  # a deferred flag stays open

    days = queue_burndown(queue="mislabel", days=14)

    assert [row["day"] for row in days] == [today - timedelta(days=13 - i) for i in range(14)]
    expected = [0] * 3 + [8] * 7 + [6] * 4
    assert [row["open"] for row in days] == expected


def test_team_page_and_downloads_are_for_admins_and_neutralise_formulas(admin_user, reviewer_user, tmp_path):
    data = build_review_data(tmp_path)
    flag = data["flags"][0]
    decide(flag, reviewer_user, note='=HYPERLINK("http://evil","click")')
    Score.objects.create(run=data["run"], product=flag.product, label=flag.label, suggested=flag.suggested,
                         confidence=0.97, raw_score=0.9, flagged=True)
    flag.product.__class__.objects.filter(pk=flag.product_id).update(external_id="@SUM(1)")
    reviewer, admin = Client(), Client()
    reviewer.force_login(reviewer_user)
    admin.force_login(admin_user)
    urls = ("/team/", f"/team/export/audit/{data['run'].pk}.csv", "/team/export/decisions.csv")

    assert [reviewer.get(url).status_code for url in urls] == [403, 403, 403]
    page, audit, decisions = (admin.get(url) for url in urls)

    assert page.status_code == 200 and b"Audit CSV (precision" in page.content
    assert audit["Content-Disposition"] == f'attachment; filename="semid-audit-precision-run{data["run"].pk}.csv"'
    audit_rows = list(csv.reader(io.StringIO(b"".join(audit.streaming_content).decode())))
    assert audit_rows == [["external_id", "label_path", "suggested_path", "confidence", "flagged"],
                          ["'@SUM(1)", flag.label.path, flag.suggested.path, "0.97", "1"]]
    decision_rows = list(csv.DictReader(io.StringIO(b"".join(decisions.streaming_content).decode())))
    assert [(r["reviewer"], r["action"], r["external_id"], r["note"]) for r in decision_rows] == [
        ("rita", "reject", "'@SUM(1)", '\'=HYPERLINK("http://evil","click")')]
