import pytest

from catalog.services import import_catalog


@pytest.mark.django_db
def test_an_admin_sees_the_catalog_in_the_django_admin(client, tmp_path):
    from django.contrib.auth.models import User

    path = tmp_path / "c.csv"
    path.write_text("external_id,name,brand,description,category_path\nP1,Kalamata Olives,Divina,,Pantry > Olives\n")
    import_catalog(path=path)
    User.objects.create_superuser("boss", password="boss-pass-123")
    client.force_login(User.objects.get(username="boss"))

    assert "Kalamata Olives" in client.get("/admin/catalog/product/").content.decode()
    assert "Pantry &gt; Olives" in client.get("/admin/catalog/category/").content.decode()
    assert client.get("/admin/audit/flag/").status_code == 200
    assert client.get("/admin/quantizer/quantizerrun/").status_code == 200
