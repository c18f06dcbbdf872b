from django import forms

from catalog.models import Flavor


class PipelineForm(forms.Form):
    flavor = forms.ChoiceField(label="Flavor", choices=[*Flavor.choices, ("both", "Both flavors")])
    seed = forms.IntegerField(label="Seed", initial=0, min_value=0)

    def flavors(self) -> list[str]:
        flavor = self.cleaned_data["flavor"]
        return list(Flavor.values) if flavor == "both" else [flavor]


class NextItemForm(forms.Form):
    flavor = forms.ChoiceField(label="Codes of", choices=Flavor.choices)
