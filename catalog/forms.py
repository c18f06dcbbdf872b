from django import forms

from catalog.models import Category
from catalog.rows import FILE_EXTENSIONS as UPLOAD_EXTENSIONS
from catalog.services import upload_problem


def leaf_categories():
    return Category.objects.filter(children__isnull=True)


class CategoryPathField(forms.CharField):
    """A category typed as its full path (the picker offers leaf paths); resolved to the Category."""

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return None
        found = Category.objects.filter(path=value.strip()).first()
        if found is None:
            matches = list(leaf_categories().filter(path__icontains=value.strip())[:2])
            if len(matches) != 1:
                raise forms.ValidationError(f"no single category matches {value!r}: pick one from the list")
            found = matches[0]
        return found


class ImportForm(forms.Form):
    file = forms.FileField(label="Catalog file (CSV or JSON Lines)",
                           widget=forms.ClearableFileInput(attrs={"accept": ",".join(UPLOAD_EXTENSIONS)}))
    allow_new_categories = forms.BooleanField(
        required=False, label="Create the categories the file names that the taxonomy lacks",
        help_text="Unchecked, an unknown category path is a row error (with a \"did you mean\" for a near miss), "
                  "so a typo never creates a category. Every category created is listed on the job page.")
    allow_uncategorized = forms.BooleanField(
        required=False, label="Import products without a category",
        help_text="Unchecked, an empty category path is a row error. Checked, such a product is imported "
                  "uncategorized and the audit suggests its category in the Uncategorized queue.")
    overwrite = forms.BooleanField(
        required=False, label="Overwrite category changes made since the last import",
        help_text="Unchecked, a row that would move a product a reviewer (or an admin) has moved since is "
                  "kept out and listed as a conflict.")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        problem = upload_problem(name=upload.name, size=upload.size)
        if problem:
            raise forms.ValidationError(problem)
        return upload
