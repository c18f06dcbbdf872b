import gc
import io

import pytest
from django.db import IntegrityError, transaction
from pghistory.models import Context

from catalog.models import Category, Product, ProductCategoryEvent
from jobs.models import Job
from catalog.rows import CatalogFileError
from catalog.services import import_catalog
from tests.conftest import wait_for

HEADER = "external_id,name,brand,description,category_path,size,price\n"
GOOD = (
    HEADER
    + "P1,Parmigiano Reggiano 200 g,Zanetti,Aged 24 months,Dairy > Cheese > Hard Cheese,200 g,7.99\n"
    + "P2,Kalamata Olives 300 g,Divina,,Pantry > Olives > Black Olives,300 g,4.50\n"
    + 'P3,"Tapenade, black olive",Divina,,Pantry > Spreads > Tapenade,,\n'
)


def write(tmp_path, text, name="catalog.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


@pytest.mark.django_db
def test_import_creates_products_and_category_tree(tmp_path):
    result = import_catalog(path=write(tmp_path, GOOD))

    assert (result.created, result.updated, result.unchanged) == (3, 0, 0)
    p1 = Product.objects.get(external_id="P1")
    assert p1.category.path == "Dairy > Cheese > Hard Cheese"
    assert p1.category.parent.path == "Dairy > Cheese"
    assert p1.size == "200 g" and p1.attributes == {"price": "7.99"}
    assert Category.objects.get(path="Pantry").depth == 1
    assert result.categories_created == Category.objects.count() == 8


@pytest.mark.django_db
def test_jsonl_import_reads_the_same_format(tmp_path):
    text = (
        '{"external_id": "J1", "name": "Oat milk", "brand": "Oatly", "description": "", "category_path": "Dairy > Milk"}\n'
        '{"external_id": "J2", "name": "Ground coffee", "category_path": ["Beverages", "Coffee"], "size": "250 g"}\n'
    )
    import_catalog(path=write(tmp_path, text, "c.jsonl"))
    assert Product.objects.get(external_id="J2").category.path == "Beverages > Coffee"


@pytest.mark.django_db
def test_reimport_of_same_file_changes_nothing(tmp_path):
    path = write(tmp_path, GOOD)
    import_catalog(path=path)
    stamps = dict(Product.objects.values_list("external_id", "updated_at"))
    contexts = Context.objects.count()

    result = import_catalog(path=path)

    assert (result.created, result.updated, result.unchanged) == (0, 0, 3)
    assert dict(Product.objects.values_list("external_id", "updated_at")) == stamps
    assert Product.objects.count() == 3
    assert Context.objects.count() == contexts  # no history context recorded for nothing


@pytest.mark.django_db
def test_changed_row_updates_in_place_and_category_move_is_in_history(tmp_path):
    import_catalog(path=write(tmp_path, GOOD))
    moved = GOOD.replace("Pantry > Spreads > Tapenade", "Pantry > Olives > Tapenade")

    result = import_catalog(path=write(tmp_path, moved), allow_new_categories=True)

    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    product = Product.objects.get(external_id="P3")
    assert product.category.path == "Pantry > Olives > Tapenade"
    events = list(product.category_events.order_by("pgh_id").values_list("pgh_label", "category__path"))
    assert events == [("created", "Pantry > Spreads > Tapenade"), ("category_changed", "Pantry > Olives > Tapenade")]


@pytest.mark.django_db
def test_a_fresh_import_writes_one_created_history_row_per_product_under_the_import_context(tmp_path, admin_user):
    result = import_catalog(path=write(tmp_path, GOOD), user=admin_user)

    products = list(Product.objects.order_by("id"))
    assert [p.external_id for p in products] == ["P1", "P2", "P3"]  # ids follow the file
    assert result.changed_ids == [p.pk for p in products]
    assert (products[2].name, products[2].brand, products[2].description) == ("Tapenade, black olive", "Divina", "")
    events = list(ProductCategoryEvent.objects.order_by("pgh_id").select_related("pgh_context"))
    assert [(e.pgh_obj_id, e.pgh_label, e.category_id) for e in events] == [
        (p.pk, "created", p.category_id) for p in products]
    assert {e.pgh_context_id for e in events} == {events[0].pgh_context_id}
    assert events[0].pgh_context.metadata == {"user": admin_user.pk, "source": "import"}


@pytest.mark.django_db
def test_the_imports_created_rows_are_those_the_history_trigger_writes(tmp_path, admin_user):
    """The import writes its "created" history rows itself (set-based, the row trigger skipped): every column
    the trigger fills, the tracked fields included, holds what the trigger would have put there."""
    import pghistory

    with pghistory.context(user=admin_user.pk, source="import"):
        by_trigger = Product.objects.create(external_id="ORM", name="Capers", category=None)
    import_catalog(path=write(tmp_path, GOOD), user=admin_user)
    imported = Product.objects.get(external_id="P1")
    columns = [f.attname for f in ProductCategoryEvent._meta.concrete_fields if f.attname != "pgh_id"]
    tracked = [c for c in columns if not c.startswith("pgh_")]
    rows = {product.pk: ProductCategoryEvent.objects.get(pgh_obj_id=product.pk) for product in (by_trigger, imported)}
    assert tracked and all(getattr(rows[imported.pk], c) == getattr(imported, c) for c in tracked)
    for event in rows.values():
        assert all(getattr(event, c) is not None for c in columns if c not in tracked)
        assert event.pgh_label == "created" and event.pgh_context.metadata == {"user": admin_user.pk, "source": "import"}
    # and the trigger is back on after the import: a product created afterwards gets its row from it
    later = Product.objects.create(external_id="LATER", name="Olive oil", category=imported.category)
    assert list(later.category_events.values_list("pgh_label", "category_id")) == [("created", imported.category_id)]


@pytest.mark.django_db
def test_a_reimport_that_moves_one_product_writes_exactly_one_history_row_with_the_import_source(tmp_path, admin_user):
    import_catalog(path=write(tmp_path, GOOD))
    before = set(ProductCategoryEvent.objects.values_list("pgh_id", flat=True))
    stamps = dict(Product.objects.values_list("external_id", "updated_at"))
    changed = (GOOD.replace("Pantry > Spreads > Tapenade", "Pantry > Olives > Black Olives")
               .replace("Kalamata Olives 300 g", "Kalamata Olives 350 g"))

    result = import_catalog(path=write(tmp_path, changed), user=admin_user)

    assert (result.created, result.updated, result.unchanged, result.conflicts) == (0, 2, 1, [])
    p2, p3 = Product.objects.get(external_id="P2"), Product.objects.get(external_id="P3")
    assert result.changed_ids == [p2.pk, p3.pk]
    assert p2.name == "Kalamata Olives 350 g" and p3.category.path == "Pantry > Olives > Black Olives"
    new = ProductCategoryEvent.objects.exclude(pgh_id__in=before).select_related("pgh_context")
    assert [(e.pgh_obj_id, e.pgh_label, e.category_id, e.pgh_context.metadata) for e in new] == [
        (p3.pk, "category_changed", p3.category_id, {"user": admin_user.pk, "source": "import"})]
    assert [k for k, v in Product.objects.values_list("external_id", "updated_at") if v != stamps[k]] in (
        ["P2", "P3"], ["P3", "P2"])
    # re-imports drew no ids: the next new product takes the next one
    import_catalog(path=write(tmp_path, changed + "P4,Capers,Divina,,Pantry > Olives > Black Olives,,\n"))
    assert Product.objects.get(external_id="P4").pk == p3.pk + 1


@pytest.mark.django_db
def test_a_file_moves_a_product_again_only_after_its_move_by_hand_is_overwritten(tmp_path):
    from catalog.services import move_product

    path = write(tmp_path, GOOD)
    import_catalog(path=path)
    product = Product.objects.get(external_id="P3")
    olives = Category.objects.get(path="Pantry > Olives > Black Olives")
    move_product(product=product, category=olives, source="api")

    kept = import_catalog(path=path)
    assert Product.objects.get(external_id="P3").category == olives
    assert [str(c) for c in kept.conflicts] == [
        "row 4: P3 is in Pantry > Olives > Black Olives since api; the file says Pantry > Spreads > Tapenade "
        "(kept, not imported)"]

    import_catalog(path=path, overwrite=True)
    assert Product.objects.get(external_id="P3").category.path == "Pantry > Spreads > Tapenade"
    moved_by_file = GOOD.replace("Pantry > Spreads > Tapenade", "Pantry > Olives > Black Olives")
    assert import_catalog(path=write(tmp_path, moved_by_file)).conflicts == []  # the last word was an import
    assert Product.objects.get(external_id="P3").category == olives


@pytest.mark.django_db
def test_a_product_without_a_category_is_imported_uncategorized_only_when_allowed(tmp_path):
    from catalog.services import move_product

    path = write(tmp_path, GOOD + "P4,Mystery Snack,,,,,\n")
    with pytest.raises(CatalogFileError) as excinfo:
        import_catalog(path=path)
    assert [str(e) for e in excinfo.value.errors] == ["row 5: category_path is empty"]
    assert Product.objects.count() == 0

    result = import_catalog(path=path, allow_uncategorized=True)
    assert (result.created, result.categories_created) == (4, 8)
    assert Product.objects.get(external_id="P4").category is None
    assert import_catalog(path=path, allow_uncategorized=True).unchanged == 4

    # a reviewer files it; the file, which still has no category for it, does not undo that
    olives = Category.objects.get(path="Pantry > Olives > Black Olives")
    move_product(product=Product.objects.get(external_id="P4"), category=olives, source="review:reassign")
    kept = import_catalog(path=path, allow_uncategorized=True)
    assert [str(c) for c in kept.conflicts] == [
        "row 5: P4 is in Pantry > Olives > Black Olives since review:reassign; the file says no category "
        "(kept, not imported)"]
    assert Product.objects.get(external_id="P4").category == olives


@pytest.mark.django_db
def test_running_demo_setup_again_keeps_the_reviewed_categories_and_the_orders(settings, tmp_path):
    from django.core.management import call_command

    from baskets.models import BasketLine, CoPurchase
    from catalog.services import move_product

    settings.SEMID_HOME = tmp_path
    first = io.StringIO()
    call_command("demo_setup", stdout=first)
    # the demo's orders come with it: products bought together, across departments
    assert "demo orders: 12000 orders" in first.getvalue()
    lines, pairs = BasketLine.objects.count(), CoPurchase.objects.count()
    assert lines > 50000 and pairs > 1000  # measured: 54,600 lines, 1,541 pairs
    paths = CoPurchase.objects.values_list("product_a__category__path", "product_b__category__path")
    across = [a.split(" > ")[0] != b.split(" > ")[0] for a, b in paths]
    assert sum(across) > len(across) / 2  # measured: 0.63 of the pairs join two departments
    moved = list(Product.objects.order_by("id")[:40])
    target = Category.objects.get(path="Household > Cleaning > Dish Soap")
    for product in moved:
        move_product(product=product, category=target, source="review:accept")

    out = io.StringIO()
    call_command("demo_setup", stdout=out)

    assert "kept the 3000 products already loaded" in out.getvalue()
    assert Product.objects.count() == 3000 and BasketLine.objects.count() == lines
    assert f"kept the {lines} order lines already loaded" in out.getvalue()
    assert set(Product.objects.filter(pk__in=[p.pk for p in moved]).values_list("category", flat=True)) == {target.pk}

    BasketLine.objects.all().delete()  # a demo database from before the demo had orders gets them
    again = io.StringIO()
    call_command("demo_setup", stdout=again)
    assert "demo orders: 12000 orders" in again.getvalue() and BasketLine.objects.count() == lines


@pytest.mark.django_db
def test_demo_setup_loads_no_orders_into_a_catalog_that_is_not_the_demos(settings, tmp_path):
    from django.core.management import call_command

    from baskets.models import BasketLine

    settings.SEMID_HOME = tmp_path
    path = tmp_path / "own.csv"
    path.write_text("external_id,name,brand,description,category_path\nOWN-1,Oat Milk,,,Dairy > Milk\n")
    import_catalog(path=path)
    out = io.StringIO()

    call_command("demo_setup", stdout=out)

    assert "demo orders: not loaded, this catalog is not the demo's" in out.getvalue()
    assert "e.g. row 2: unknown product 'DEMO-" in out.getvalue()
    assert not BasketLine.objects.exists() and Product.objects.count() == 1


@pytest.mark.parametrize(
    "body,expected",
    [
        ("P1,,B,,A > B,,\n", "row 2: name is empty"),
        ("P1,Milk,B,,,,\n", "row 2: category_path is empty"),
        ("P1,Milk,B,,A >  > B,,\n", "row 2: category_path 'A >  > B' has an empty level"),
        ("P1,Milk,B,,A > B,,\nP1,Tea,B,,A > C,,\n", "row 3: external_id 'P1' duplicates row 2"),
        (",Milk,B,,A > B,,\n", "row 2: external_id is empty"),
        ("P1,Milk,B,,A > B\n", "row 2: expected 7 fields, found 5"),
    ],
)
@pytest.mark.django_db
def test_bad_row_is_reported_with_its_number_and_nothing_is_written(tmp_path, body, expected):
    path = write(tmp_path, HEADER + body)

    with pytest.raises(CatalogFileError) as excinfo:
        import_catalog(path=path)

    assert expected in [str(e) for e in excinfo.value.errors]
    assert Product.objects.count() == 0 and Category.objects.count() == 0


@pytest.mark.parametrize(
    "body,expected",
    [
        ("P1," + "n" * 501 + ",B,,A > B,,\n", "row 2: name is over 500 characters"),
        ("P1,Milk," + "b" * 201 + ",,A > B,,\n", "row 2: brand is over 200 characters"),
        ("P1,Milk,B,,A > " + "c" * 201 + ",,\n", "row 2: category_path has a level of over 200 characters"),
        ("P1,Milk,B,," + " > ".join(["c" * 150] * 7) + ",,\n", "row 2: category_path is over 1000 characters"),
        ("P1,Mi\x00lk,B,,A > B,,\n", "row 2: name holds a NUL character"),
        ("P1,Milk,B,,A > B,,1\x00.99\n", "row 2: price holds a NUL character"),
        ("P1,Milk,B,,A > B,," + "9" * 200_000 + "\n",
         "row 2: unreadable CSV (field larger than field limit (131072)); nothing after this row was read"),
    ],
)
@pytest.mark.django_db
def test_oversized_and_nul_cells_are_row_errors_not_crashes(tmp_path, body, expected):
    with pytest.raises(CatalogFileError) as excinfo:
        import_catalog(path=write(tmp_path, HEADER + body))
    assert expected in [str(e) for e in excinfo.value.errors]
    assert Product.objects.count() == 0 and Category.objects.count() == 0


@pytest.mark.django_db
def test_nul_in_a_json_lines_attribute_key_or_nested_value_is_a_row_error(tmp_path):
    text = ('{"external_id": "J1", "name": "Oat milk", "category_path": "Dairy > Milk", "co\\u0000lour": "red"}\n'
            '{"external_id": "J2", "name": "Tea", "category_path": "Drinks", "tags": ["a\\u0000b"]}\n')
    with pytest.raises(CatalogFileError) as excinfo:
        import_catalog(path=write(tmp_path, text, "c.jsonl"))
    assert [str(e) for e in excinfo.value.errors] == [
        "row 1: co\\x00lour holds a NUL character", "row 2: tags holds a NUL character"]


@pytest.mark.django_db
def test_csv_cells_are_read_by_their_header_in_any_column_order(tmp_path):
    """Columns in another order, the optional ones missing, an extra column empty in one row."""
    text = ("category_path,colour,name,external_id\n"
            "Dairy > Milk,white,Oat milk,C1\n"
            "Drinks > Tea,,Green tea,C2\n")
    result = import_catalog(path=write(tmp_path, text))

    assert result.created == 2
    rows = {p.external_id: p for p in Product.objects.select_related("category")}
    assert (rows["C1"].name, rows["C1"].brand, rows["C1"].description, rows["C1"].size) == ("Oat milk", "", "", "")
    assert rows["C1"].category.path == "Dairy > Milk" and rows["C1"].attributes == {"colour": "white"}
    assert rows["C2"].category.path == "Drinks > Tea" and rows["C2"].attributes == {}


@pytest.mark.django_db
def test_a_row_with_a_nul_is_reported_with_its_other_errors_and_keeps_its_id(tmp_path):
    text = HEADER + "P1,,B,,A > B,,1\x00.99\n" + "P1,Milk,B,,A > B,,\n"
    with pytest.raises(CatalogFileError) as excinfo:
        import_catalog(path=write(tmp_path, text))
    assert [str(e) for e in excinfo.value.errors] == [
        "row 2: name is empty", "row 2: price holds a NUL character", "row 3: external_id 'P1' duplicates row 2"]


def test_row_limits_match_the_database_columns():
    from catalog.rows import MAX_LENGTHS, MAX_LEVEL_LENGTH, MAX_PATH_LENGTH

    for column, limit in MAX_LENGTHS.items():
        assert Product._meta.get_field(column).max_length == limit
    assert Category._meta.get_field("name").max_length == MAX_LEVEL_LENGTH
    assert Category._meta.get_field("path").max_length == MAX_PATH_LENGTH


@pytest.mark.django_db
def test_every_bad_row_is_reported_not_only_the_first(tmp_path):
    path = write(tmp_path, HEADER + "P1,,B,,A,,\nP2,Tea,B,,,,\nP3,Good,B,,A,,\n")
    with pytest.raises(CatalogFileError) as excinfo:
        import_catalog(path=path)
    assert [str(e) for e in excinfo.value.errors] == ["row 2: name is empty", "row 3: category_path is empty"]


@pytest.mark.django_db
def test_wrong_columns_and_bad_encoding_are_clear_errors(tmp_path):
    with pytest.raises(CatalogFileError) as excinfo:
        import_catalog(path=write(tmp_path, "id,title,path\n1,Milk,A\n"))
    assert str(excinfo.value.errors[0]).startswith("row 1: header has missing column(s) external_id, name, category_path")

    latin1 = (HEADER + "P1,Crème fraîche,B,,Dairy > Cream,,\n").encode("latin-1")
    with pytest.raises(CatalogFileError) as excinfo:
        import_catalog(path=write(tmp_path, latin1))
    assert str(excinfo.value.errors[0]).startswith("row 2: not valid UTF-8")
    assert Product.objects.count() == 0


@pytest.mark.django_db
def test_a_bad_file_after_a_good_import_leaves_the_catalog_as_it_was(tmp_path):
    import_catalog(path=write(tmp_path, GOOD))
    changed_and_bad = GOOD.replace("Parmigiano Reggiano 200 g", "Grana Padano") + "P9,,B,,A,,\n"
    with pytest.raises(CatalogFileError):
        import_catalog(path=write(tmp_path, changed_and_bad))
    assert Product.objects.get(external_id="P1").name == "Parmigiano Reggiano 200 g"


def test_import_job_runs_end_to_end_through_redis_and_the_worker(tmp_path, worker, admin_user):
    from jobs.runner import start_job

    job = start_job(kind="import", params={"path": str(write(tmp_path, GOOD))}, user=admin_user)

    job = wait_for(lambda: Job.objects.filter(pk=job.pk, status__in=["succeeded", "failed"]).first())
    assert job.status == "succeeded", job.result
    assert job.progress == 1.0 and job.result["created"] == 3
    assert Product.objects.count() == 3


def test_import_job_with_bad_rows_fails_with_the_row_errors(tmp_path, worker, admin_user):
    from jobs.runner import start_job

    job = start_job(kind="import", params={"path": str(write(tmp_path, HEADER + "P1,,B,,A,,\n"))}, user=admin_user)

    job = wait_for(lambda: Job.objects.filter(pk=job.pk, status__in=["succeeded", "failed"]).first())
    assert job.status == "failed"
    assert job.result["errors"] == ["row 2: name is empty"]
    assert Product.objects.count() == 0


@pytest.mark.django_db
def test_imported_products_get_codes_from_the_active_run(tmp_path):
    from django.core.management import call_command

    from catalog.demo import generate_demo_catalog, write_csv
    from catalog.embeddings import embed_products
    from quantizer.models import SemanticId
    from quantizer.services import create_run, train_run

    demo = generate_demo_catalog(n_products=80, seed=5)
    write_csv(demo, tmp_path / "first.csv")
    import_catalog(path=tmp_path / "first.csv")
    embed_products(flavor="precision")
    run = train_run(run=create_run(flavor="precision"))
    assert run.is_active and SemanticId.objects.filter(run=run).count() == 80

    call_command("import_catalog", str(write(tmp_path, GOOD)), "--allow-new-categories", verbosity=0)

    coded = SemanticId.objects.filter(run=run, product__external_id__in=["P1", "P2", "P3"])
    assert coded.count() == 3
    assert all(len(s.codes) == len(run.config["codebook_sizes"]) for s in coded)
    # a second small import before that audit ran shares it instead of queueing another
    audits = Job.objects.filter(kind="audit", status="queued")
    assert audits.count() == 1
    more = GOOD.replace("Parmigiano Reggiano 200 g", "Parmigiano Reggiano 400 g")
    call_command("import_catalog", str(write(tmp_path, more, "more.csv")), verbosity=0)
    assert audits.count() == 1


@pytest.mark.django_db
def test_an_import_leaves_the_garbage_collector_as_it_found_it(tmp_path):
    # Reading and importing pause the collector (catalog.rows.collector_paused); a worker gets it back as it was,
    # from a file that fails too.
    typo = HEADER + "P9,Grana Padano,Zanetti,,Dairy > Cheese > Hard Chese,,\n"
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            import_catalog(path=write(tmp_path, GOOD))
            assert gc.isenabled() is enabled
            with pytest.raises(CatalogFileError):  # an unknown category: raised by import_rows
                import_catalog(path=write(tmp_path, typo))
            assert gc.isenabled() is enabled
            with pytest.raises(CatalogFileError):  # a row without a name: raised by read_catalog
                import_catalog(path=write(tmp_path, GOOD + "P9,,B,,A,,\n"))
            assert gc.isenabled() is enabled
    finally:
        gc.enable()


@pytest.mark.django_db
def test_the_database_holds_one_product_per_external_id():
    Product.objects.create(external_id="P1", name="Parmigiano")
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.create(external_id="P1", name="Grana Padano")


@pytest.mark.django_db
def test_an_unknown_path_is_refused_with_a_did_you_mean_unless_new_categories_are_allowed(tmp_path):
    import_catalog(path=write(tmp_path, GOOD))
    typo = HEADER + "P9,Grana Padano,Zanetti,,Dairy > Cheese > Hard Chese,,\nP10,Rocket fuel,X,,Spaceship > Fuel,,\n"

    with pytest.raises(CatalogFileError) as excinfo:
        import_catalog(path=write(tmp_path, typo))

    assert [str(e) for e in excinfo.value.errors] == [
        "row 2: unknown category 'Dairy > Cheese > Hard Chese'; did you mean 'Dairy > Cheese > Hard Cheese'? "
        "(allow new categories to create it)",
        "row 3: unknown category 'Spaceship > Fuel' (allow new categories to create it)",
    ]
    assert not Product.objects.filter(external_id__in=["P9", "P10"]).exists()
    assert Category.objects.count() == 8

    allowed = import_catalog(path=write(tmp_path, typo), allow_new_categories=True)
    assert allowed.created_categories == ["Dairy > Cheese > Hard Chese", "Spaceship", "Spaceship > Fuel"]


@pytest.mark.django_db
def test_a_case_variant_path_files_under_the_existing_category(tmp_path):
    import_catalog(path=write(tmp_path, GOOD))
    result = import_catalog(path=write(tmp_path, HEADER + "P9,Grana Padano,Zanetti,,dairy > CHEESE > hard cheese,,\n"))
    assert result.created_categories == [] and Category.objects.count() == 8
    assert Product.objects.get(external_id="P9").category.path == "Dairy > Cheese > Hard Cheese"


@pytest.mark.parametrize(
    "body,expected",
    [
        ("P9,Cheese,B,,Dairy > Cheese,,\n",
         "row 2: category 'Dairy > Cheese' has sub-categories: file the product under one of them"),
        ("P9,Parmesan,B,,Dairy > Cheese > Hard Cheese > Parmesan,,\n",
         "row 2: category 'Dairy > Cheese > Hard Cheese' holds products: a sub-category under it would leave them "
         "on a non-leaf category"),
        ("P9,Tea,B,,Drinks > Tea,,\nP10,Green tea,B,,Drinks > Tea > Green,,\n",
         "row 2: category 'Drinks > Tea' has sub-categories: file the product under one of them"),
    ],
)
@pytest.mark.django_db
def test_products_are_filed_on_leaves_only(tmp_path, body, expected):
    import_catalog(path=write(tmp_path, GOOD))
    with pytest.raises(CatalogFileError) as excinfo:
        import_catalog(path=write(tmp_path, HEADER + body), allow_new_categories=True)
    assert [str(e) for e in excinfo.value.errors] == [expected]
    assert Category.objects.count() == 8 and Product.objects.count() == 3


def test_an_upload_job_lists_the_categories_it_created(tmp_path, worker, admin_user):
    from jobs.runner import start_job

    import_catalog(path=write(tmp_path, GOOD))
    path = write(tmp_path, HEADER + "P9,Rocket fuel,X,,Spaceship > Fuel,,\n")
    refused = start_job(kind="import", params={"path": str(path)}, user=admin_user)
    allowed = start_job(kind="import", params={"path": str(path), "allow_new_categories": True}, user=admin_user)

    refused, allowed = (wait_for(lambda j=j: Job.objects.filter(pk=j.pk, status__in=["succeeded", "failed"]).first())
                        for j in (refused, allowed))
    assert refused.status == "failed" and refused.result["errors"] == [
        "row 2: unknown category 'Spaceship > Fuel' (allow new categories to create it)"]
    assert allowed.status == "succeeded" and allowed.result["created_categories"] == ["Spaceship", "Spaceship > Fuel"]
