from django import forms

from audit.models import Decision, Queue
from catalog.forms import CategoryPathField
from catalog.models import Category, Flavor
from quantizer.models import QuantizerRun

CONFIDENCE_BANDS = {
    "high": {"min_confidence": 0.9},
    "medium": {"min_confidence": 0.7, "max_confidence": 0.9},
    "low": {"max_confidence": 0.7},
}
CONFIDENCE_CHOICES = [("high", "High (≥ 90%)"), ("medium", "Medium (70–90%)"), ("low", "Low (< 70%)")]


class QueueFilterForm(forms.Form):
    queue = forms.ChoiceField(label="Queue", choices=Queue.choices, required=False)
    department = forms.ChoiceField(label="Department", required=False)
    confidence = forms.ChoiceField(label="Confidence", required=False, choices=[("", "Any"), *CONFIDENCE_CHOICES])
    flavor = forms.ChoiceField(label="Flavor", required=False, choices=[("", "Any"), *Flavor.choices])
    run = forms.ChoiceField(label="Run", required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["department"].choices = [("", "All departments")] + [
            (name, name) for name in Category.objects.filter(depth=1).values_list("name", flat=True)]
        self.fields["run"].choices = [("", "Any run")] + [
            (str(pk), f"#{pk} {flavor}{' (active)' if active else ''}")
            for pk, flavor, active in QuantizerRun.objects.filter(flags__isnull=False).distinct()
            .values_list("pk", "flavor", "is_active").order_by("-pk")[:20]]

    def queue_name(self) -> str:
        return (self.cleaned_data.get("queue") if self.is_valid() else "") or Queue.MISLABEL

    def filters(self) -> dict:
        """The filters as audit.selectors.filter_flags reads them."""
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        out = {k: data[k] for k in ("department", "flavor", "run") if data.get(k)}
        out.update(CONFIDENCE_BANDS.get(data.get("confidence") or "", {}))
        return out

    def query(self) -> dict:
        """The raw GET values (without the queue) to carry into links and the review session."""
        if not self.is_valid():
            return {}
        return {k: v for k, v in self.cleaned_data.items() if v and k != "queue"}


class DecisionForm(forms.Form):
    action = forms.ChoiceField(label="Action", choices=[
        (a, a) for a in (Decision.Action.ACCEPT, Decision.Action.REJECT, Decision.Action.REASSIGN,
                         Decision.Action.DEFER, Decision.Action.COMMENT)])
    category = CategoryPathField(label="Reassign to category", required=False)
    note = forms.CharField(label="Comment", required=False, widget=forms.Textarea(attrs={"rows": 2}))
    queue = forms.ChoiceField(choices=Queue.choices, required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if data.get("action") == Decision.Action.REASSIGN and not data.get("category") and "category" not in self.errors:
            self.add_error("category", "pick the category to reassign to")
        return data


class FlagIdsField(forms.Field):
    """The ids of the flags ticked in the grid (checkboxes, or hidden inputs on the confirmation)."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"required": "tick at least one flag", "invalid": "bad flag ids"}

    def to_python(self, value):
        try:
            return [int(v) for v in value or []]
        except (TypeError, ValueError):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class BulkDecisionForm(forms.Form):
    action = forms.ChoiceField(choices=[(Decision.Action.ACCEPT, "Accept"), (Decision.Action.REJECT, "Reject")])
    flags = FlagIdsField()
    note = forms.CharField(label="Comment on every decision (optional)", required=False,
                           widget=forms.Textarea(attrs={"rows": 2}))
    back = forms.CharField(required=False, widget=forms.HiddenInput)  # the grid's query string, to return to
