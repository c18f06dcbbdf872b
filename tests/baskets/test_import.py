import pytest
from django.core.management import CommandError, call_command

from baskets.models import BasketLine
from baskets.rows import BasketFileError
from baskets.services import import_baskets
from tests.baskets.conftest import HEADER, write

GOOD = HEADER + (
    "1,milk,1,1\n"
    "1,bread,2,0\n"
    "1,butter,3,0\n"
    "2,chips,1,0\n"
    "2,salsa,2,1\n"
)


def lines():
    return sorted(BasketLine.objects.values_list("order_id", "product__external_id", "add_to_cart_order", "reordered"))


def test_good_file_stores_every_line(catalog, tmp_path):
    result = import_baskets(path=write(tmp_path, GOOD))

    assert (result.lines, result.orders, result.created, result.updated, result.unchanged, result.removed) == (5, 2, 5, 0, 0, 0)
    assert lines() == [(1, "bread", 2, False), (1, "butter", 3, False), (1, "milk", 1, True),
                       (2, "chips", 1, False), (2, "salsa", 2, True)]


def test_without_the_reordered_column_reordered_is_unknown(catalog, tmp_path):
    import_baskets(path=write(tmp_path, "order_id,external_id,add_to_cart_order\n7,jam,1\n"))

    assert lines() == [(7, "jam", 1, None)]


def test_every_bad_line_is_reported_with_its_line_number_and_nothing_is_imported(catalog, tmp_path):
    import_baskets(path=write(tmp_path, GOOD))
    before = lines()
    bad = HEADER + (
        "3,milk,1,0\n"        # 2: fine
        "3,bread,2\n"         # 3: a field missing
        "3,jam,3,0,extra\n"   # 4: a field too many
        "A3,butter,4,0\n"     # 5: order id not a number
        "3,chips,x,0\n"       # 6: position not a number
        "3,salsa,0,0\n"       # 7: position from 1
        "4,milk,1.5,0\n"      # 8: position not whole
        "4,bread,1,2\n"       # 9: reordered not 0/1
        "4,ghost,2,0\n"       # 10: unknown product
        "3,milk,5,0\n"        # 11: milk twice in order 3
    )
    with pytest.raises(BasketFileError) as caught:
        import_baskets(path=write(tmp_path, bad))

    assert [str(e) for e in caught.value.errors] == [
        "row 3: expected 4 fields, found 3",
        "row 4: expected 4 fields, found 5",
        "row 5: order_id 'A3' is not a whole number",
        "row 6: add_to_cart_order 'x' is not a whole number from 1",
        "row 7: add_to_cart_order '0' is not a whole number from 1",
        "row 8: add_to_cart_order '1.5' is not a whole number from 1",
        "row 9: reordered '2' is not 0 or 1",
        "row 10: unknown product 'ghost' (not in the catalog: import it with manage.py import_catalog)",
        "row 11: the product is already in order 3 (row 2)",
    ]
    assert "nothing imported" in str(caught.value)
    assert lines() == before


def test_a_taken_cart_position_is_reported_at_the_later_line(catalog, tmp_path):
    with pytest.raises(BasketFileError) as caught:
        import_baskets(path=write(tmp_path, HEADER + "5,milk,1,0\n5,bread,2,0\n5,jam,1,0\n"))

    assert [str(e) for e in caught.value.errors] == ["row 4: add_to_cart_order 1 of order 5 is taken by row 2"]
    assert lines() == []


def test_unknown_products_are_each_reported_by_line(catalog, tmp_path):
    text = HEADER + "1,milk,1,0\n1,nope-1,2,0\n2,bread,1,0\n2,nope-2,2,1\n"

    with pytest.raises(BasketFileError) as caught:
        import_baskets(path=write(tmp_path, text))

    assert [(e.row, e.message.split(" (")[0]) for e in caught.value.errors] == [
        (3, "unknown product 'nope-1'"), (5, "unknown product 'nope-2'")]
    assert lines() == []


@pytest.mark.parametrize("header, message", [
    ("order,external_id,add_to_cart_order\n", "row 1: header has missing column(s) order_id; unknown column(s) order"),
    ("order_id,external_id,add_to_cart_order,reordered,price\n", "row 1: header has unknown column(s) price"),
])
def test_a_bad_header_is_refused_at_row_1(catalog, tmp_path, header, message):
    with pytest.raises(BasketFileError) as caught:
        import_baskets(path=write(tmp_path, header + "1,milk,1\n"))

    assert str(caught.value.errors[0]).startswith(message)


def test_reimporting_the_same_file_changes_nothing(catalog, tmp_path):
    path = write(tmp_path, GOOD)
    import_baskets(path=path)
    before = lines()

    result = import_baskets(path=path)

    assert (result.created, result.updated, result.unchanged, result.removed) == (0, 0, 5, 0)
    assert lines() == before


def test_a_file_restates_its_orders_and_leaves_the_others(catalog, tmp_path):
    import_baskets(path=write(tmp_path, GOOD))
    # order 1 now: bread first, milk second, butter gone; order 2 not in the file
    result = import_baskets(path=write(tmp_path, HEADER + "1,bread,1,0\n1,milk,2,1\n1,jam,3,0\n"))

    assert (result.created, result.updated, result.unchanged, result.removed) == (1, 2, 0, 1)
    assert lines() == [(1, "bread", 1, False), (1, "jam", 3, False), (1, "milk", 2, True),
                       (2, "chips", 1, False), (2, "salsa", 2, True)]


def test_deleting_a_product_deletes_its_lines(catalog, tmp_path):
    import_baskets(path=write(tmp_path, GOOD))

    catalog["salsa"].delete()

    assert [line[1] for line in lines()] == ["bread", "butter", "milk", "chips"]


def test_command_prints_counts_and_fails_with_the_line_numbers(catalog, tmp_path, capsys):
    call_command("import_baskets", str(write(tmp_path, GOOD)), verbosity=0)
    assert "5 lines in 2 orders: 5 created, 0 updated, 0 unchanged, 0 removed" in capsys.readouterr().out

    with pytest.raises(CommandError) as caught:
        call_command("import_baskets", str(write(tmp_path, HEADER + "9,milk,1,0\n9,nobody,2,0\n")), verbosity=0)

    assert "1 bad row(s), nothing imported" in str(caught.value)
    assert "row 3: unknown product 'nobody'" in str(caught.value)
