import csv
from datetime import timedelta

import pytest

from tests.ui.conftest import build_review_data, login, make_reviewer, screenshot

pytestmark = pytest.mark.browser


def a_fortnight_of_reviews(tmp_path, reviewer_user):
    """20 flags raised 13 days ago, decided a few a day since by rita and rob; rob second-reviews three."""
    from django.utils import timezone

    from audit.models import Decision, Flag, Score
    from audit.review.claims import claim_flag
    from audit.review.decisions import decide_flag

    data = build_review_data(tmp_path, n_products=80, n_flags=20)
    flags = data["flags"]
    Score.objects.bulk_create(Score(run=data["run"], product=f.product, label=f.label, suggested=f.suggested,
                                    confidence=f.confidence, raw_score=f.confidence, flagged=True) for f in flags)
    Flag.objects.update(created_at=timezone.now() - timedelta(days=13))
    rob = make_reviewer("rob")
    for n, flag in enumerate(flags[:14]):
        reviewer = reviewer_user if n % 3 else rob
        claim_flag(flag=flag, reviewer=reviewer)
        note = '=HYPERLINK("http://evil","open")' if n == 1 else ""
        decision = decide_flag(flag=flag, reviewer=reviewer, action="accept" if n % 2 else "reject", note=note)
        Decision.objects.filter(pk=decision.pk).update(created_at=timezone.now() - timedelta(days=(13 - n) // 2))
    for flag, verdict in ((flags[1], "accept"), (flags[2], "accept"), (flags[4], "reject")):
        Flag.objects.filter(pk=flag.pk).update(needs_second_review=True)
        claim_flag(flag=flag, reviewer=rob)
        decide_flag(flag=flag, reviewer=rob, action=verdict)
    return data


def test_admin_sees_the_team_and_downloads_neutralised_csv(new_page, admin_user, reviewer_user, tmp_path, settings):
    settings.SEMID_SECOND_REVIEW_SHARE = 0.0
    run = a_fortnight_of_reviews(tmp_path, reviewer_user)["run"]
    page = new_page()
    login(page, "ada", "admin-pass-123")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Team").click()
    page.wait_for_url("**/team/")
    activity = page.get_by_test_id("activity")
    assert activity.locator("tbody tr").count() == 2
    assert page.get_by_test_id("agreement").inner_text() == "67%"  # rob agreed with 2 of rita's 3 decisions
    burndown = [int(n) for n in page.get_by_test_id("burndown").locator("td.num").all_text_contents()]
    assert burndown[-1] == 6 and max(burndown) == 20 and burndown == sorted(burndown, reverse=True)
    screenshot(page, "team")

    with page.expect_download() as download:
        page.get_by_role("link", name="Decisions CSV").click()
    path = download.value.path()
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 17  # 14 decisions and 3 second reviews
    notes = [r["note"] for r in rows if r["note"]]
    assert notes == ['\'=HYPERLINK("http://evil","open")']  # prefixed: a spreadsheet shows it, never runs it

    with page.expect_download() as download:
        page.get_by_role("link", name=f"Audit CSV (precision, run #{run.pk})").click()
    assert download.value.suggested_filename == f"semid-audit-precision-run{run.pk}.csv"
    with open(download.value.path(), newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 20


def test_reviewers_have_no_team_view(page, reviewer_user, tmp_path):
    build_review_data(tmp_path)
    login(page, "rita", "review-pass-123")
    assert page.get_by_role("navigation", name="Main").get_by_role("link", name="Team").count() == 0
    response = page.goto("/team/")
    assert response.status == 403
    assert page.get_by_text("this page is for admins").is_visible()
