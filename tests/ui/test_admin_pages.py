import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_for
from tests.ui.conftest import build_review_data, import_demo_catalog, login, screenshot

pytestmark = pytest.mark.browser

BAD_CSV = (
    "external_id,name,brand,description,category_path,size,price\n"
    "B1,Good Oat Milk,Oatly,,Dairy & Eggs > Milk > Plant-Based Milk,1 l,3.10\n"
    "B2,,NoName,,Dairy & Eggs > Milk > Dairy Milk,1 l,1.00\n"
    "B3,Pretzel Sticks,Snyder,,,200 g,2.00\n"
)


def test_reviewers_cannot_open_admin_pages(page, reviewer_user, tmp_path):
    login(page, "rita", "review-pass-123")
    for url in ("/runs/", "/import/"):
        response = page.goto(url)
        assert response.status == 403


def test_runs_page_shows_metrics_plots_and_activates_a_run(page, admin_user, tmp_path):
    from quantizer.models import QuantizerRun

    data = build_review_data(tmp_path)
    older = QuantizerRun.objects.create(flavor="precision", embedding_model="test", status="succeeded", progress=1.0,
                                        metrics={"spearman": 0.4, "train_products": 400}, config={}, n_products=1000)
    login(page, "ada", "admin-pass-123")
    page.goto("/runs/")
    expect(page.locator(f"tr[data-run='{older.pk}']")).to_contain_text("1000 products (trained on 400)")
    expect(page.locator(f"tr[data-run='{data['run'].pk}']")).not_to_contain_text("trained on")
    metrics = page.get_by_role("region", name="Metrics")
    spearman = metrics.get_by_role("row", name=re.compile("spearman")).inner_text()
    assert "0.400" in spearman and "0.610" in spearman  # both runs side by side
    assert "Similar products share longer codes" in spearman  # what it measures, in words; the key beside it
    assert "text similarity" in metrics.get_by_role("row", name=re.compile("spearman")).get_attribute("title")
    page.goto(f"/runs/?run={data['run'].pk}")
    assert page.get_by_role("img", name="utilization per level").locator("rect").count() == 4
    assert page.get_by_role("img", name="loss curve").locator("circle").count() == 8
    page.locator(f"tr[data-run='{older.pk}']").get_by_role("button", name="Activate").click()
    expect(page.get_by_text(f"Run #{older.pk} is now the active precision run.")).to_be_visible()
    assert QuantizerRun.objects.get(pk=older.pk).is_active
    assert not QuantizerRun.objects.get(pk=data["run"].pk).is_active


def test_admin_starts_the_pipeline_and_watches_it_finish(page, admin_user, worker, tmp_path):
    from jobs.models import Job
    from quantizer.models import QuantizerRun

    import_demo_catalog(tmp_path, n_products=60)
    login(page, "ada", "admin-pass-123")
    page.goto("/runs/")
    page.get_by_label("Flavor").select_option("precision")
    page.get_by_label("Seed").fill("3")
    page.get_by_role("button", name="Run pipeline").click()
    expect(page.get_by_text(re.compile(r"Pipeline job #\d+ queued"))).to_be_visible()
    job = Job.objects.get(kind="pipeline")
    assert job.params == {"flavors": ["precision"], "seed": 3}
    status = page.get_by_test_id(f"job-{job.pk}-status")
    # the page polls (htmx, every second) without a reload until the job is done
    expect(status).to_have_text("running", timeout=120_000)
    screenshot(page, "runs-running")
    expect(status).to_have_text(re.compile("succeeded|failed"), timeout=300_000)
    job.refresh_from_db()
    assert job.status == "succeeded", job.result
    run = QuantizerRun.objects.get(pk=job.result["precision"]["run"])
    assert run.status == "succeeded" and run.is_active
    expect(page.locator(f"tr[data-run='{run.pk}']")).to_contain_text("succeeded")
    expect(page.locator("#runs-status")).to_have_attribute("data-busy", "no")  # polling stopped
    # no poll still in flight; the run's own page, not the polled URL again (two fresh-clone runs saw a
    # navigation to the same /runs/ aborted here, net::ERR_ABORTED)
    page.wait_for_load_state("networkidle")
    page.goto(f"/runs/?run={run.pk}")
    assert page.get_by_role("region", name="Metrics").is_visible()
    screenshot(page, "runs")


def test_bad_csv_upload_lists_the_row_errors(page, admin_user, worker, tmp_path):
    from catalog.models import Product
    from jobs.models import Job

    bad = Path(tmp_path) / "bad.csv"
    bad.write_text(BAD_CSV)
    login(page, "ada", "admin-pass-123")
    page.goto("/import/")
    screenshot(page, "import")
    page.get_by_label("Catalog file").set_input_files(str(bad))
    page.get_by_role("button", name="Upload and import").click()
    page.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    errors = page.get_by_test_id("row-errors")
    expect(errors).to_be_visible(timeout=60_000)
    text = errors.inner_text()
    assert "row 3" in text and "row 4" in text and "row 2" not in text
    expect(page.get_by_test_id("job-status")).to_have_text("failed")
    job = wait_for(lambda: Job.objects.filter(kind="import", status="failed").first(), timeout=5)
    assert job.params["filename"] == "bad.csv" and job.params["path"].endswith(".csv")
    assert Product.objects.count() == 0  # nothing imported
    screenshot(page, "job")


def test_good_jsonl_upload_reports_counts(page, admin_user, worker, tmp_path):
    from catalog.models import Product

    good = Path(tmp_path) / "good.jsonl"
    good.write_text('{"external_id": "G1", "name": "Oat Milk", "category_path": "Dairy & Eggs > Milk > Plant-Based Milk"}\n'
                    '{"external_id": "G2", "name": "Mystery Snack", "category_path": ""}\n')
    login(page, "ada", "admin-pass-123")
    page.goto("/import/")
    page.get_by_label("Catalog file").set_input_files(str(good))
    page.get_by_label("Import products without a category").check()
    page.get_by_role("button", name="Upload and import").click()
    result = page.get_by_test_id("job-result")
    expect(result).to_be_visible(timeout=60_000)
    assert "created" in result.inner_text()
    assert Product.objects.filter(external_id="G1").exists()
    assert Product.objects.get(external_id="G2").category is None  # the checkbox reached the import


def test_a_reviewer_on_an_admin_page_gets_a_page_with_the_way_back(page, reviewer_user):
    login(page, "rita", "review-pass-123")
    response = page.goto("/runs/")

    assert response.status == 403
    assert "this page is for admins" in page.get_by_test_id("forbidden").inner_text().lower()
    page.get_by_role("link", name="Back to the review queues").click()
    page.wait_for_url("**/")
    assert page.get_by_role("navigation", name="Main").is_visible()
