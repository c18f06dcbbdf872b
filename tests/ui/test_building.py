"""Until the first flags exist, every page a reviewer sees says the queues are being built, with the
progress, and no page sends a reviewer to one they cannot open; when the audit is done the page shows
the flags by itself."""

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import build_review_data, login

pytestmark = pytest.mark.browser


def test_pages_say_the_queues_are_being_built_until_the_flags_exist(page, reviewer_user, tmp_path):
    from audit.models import Flag
    from jobs.models import Job

    job = Job.objects.create(kind="pipeline", status=Job.Status.RUNNING, progress=0.4,
                             message="precision: training, epoch 12/60")
    login(page, "rita", "review-pass-123")

    for path in ("/", "/clusters/"):
        page.goto(path)
        banner = page.get_by_test_id("building")
        expect(banner).to_contain_text("being built: precision: training, epoch 12/60 (40%)")
        assert banner.get_by_role("link").count() == 0  # a reviewer cannot open the runs page
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs")).to_have_count(0)
    page.goto("/")
    expect(page.get_by_text("No flags yet")).to_be_visible()

    Job.objects.filter(pk=job.pk).update(progress=0.7, message="precision: auditing")
    expect(page.get_by_test_id("building")).to_contain_text("auditing (70%)", timeout=10_000)  # it follows the job

    build_review_data(tmp_path)  # the audit wrote its flags
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, progress=1.0)
    expect(page.get_by_test_id("building")).to_have_count(0, timeout=10_000)  # the page reloaded itself
    top = Flag.objects.order_by("-priority", "id").first()
    expect(page.get_by_role("link", name=top.product.name).first).to_be_visible()
