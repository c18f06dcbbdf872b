from django import forms

from catalog.models import Flavor


class PipelineForm(forms.Form):
    flavor = forms.ChoiceField(label="Flavor", choices=[*Flavor.choices, ("both", "Both flavors")])
    seed = forms.IntegerField(label="Seed", initial=0, min_value=0)

    def flavors(self) -> list[str]:
        flavor = self.cleaned_data["flavor"]
        return list(Flavor.values) if flavor == "both" else [flavor]


class NextItemForm(forms.Form):
    """A next-item model to train: it needs imported orders and an active run of the flavor."""

    flavor = forms.ChoiceField(label="Codes of", choices=Flavor.choices)

    def clean_flavor(self) -> str:
        from baskets.selectors import has_baskets
        from quantizer.services import active_run

        flavor = self.cleaned_data["flavor"]
        if not has_baskets():
            raise forms.ValidationError("No orders imported yet: import them first (manage.py import_baskets PATH).")
        if active_run(flavor, required=False) is None:
            raise forms.ValidationError(f"No active {flavor} run: run the pipeline for {flavor} first.")
        return flavor
