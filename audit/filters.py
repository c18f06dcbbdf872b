"""The bulk review grid's search and filters (django-filter): name or brand, category, cluster prefix,
confidence band, flavor."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Exists, OuterRef, Q

from audit.forms import CONFIDENCE_BANDS, CONFIDENCE_CHOICES
from audit.selectors import filter_flags
from catalog.models import Flavor
from quantizer.models import SemanticId
from quantizer.selectors import normalize_prefix


class FlagGridForm(forms.Form):
    def clean_prefix(self):
        prefix = self.cleaned_data.get("prefix") or ""
        if not prefix:
            return ""
        try:
            return normalize_prefix(prefix)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class FlagGridFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(label="Search (name or brand)", method="search")
    category = django_filters.CharFilter(label="Category (path contains)", method="in_category")
    prefix = django_filters.CharFilter(label="Cluster prefix", method="under_prefix")
    confidence = django_filters.ChoiceFilter(label="Confidence", choices=CONFIDENCE_CHOICES, empty_label="Any",
                                             method="in_band")
    flavor = django_filters.ChoiceFilter(label="Flavor", field_name="run__flavor", choices=Flavor.choices,
                                         empty_label="Any")

    class Meta:
        form = FlagGridForm
        fields = ["q", "category", "prefix", "confidence", "flavor"]

    def search(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(Q(product__name__icontains=value) | Q(product__brand__icontains=value)) if value else queryset

    def in_category(self, queryset, name, value):
        """The label's path; for an uncategorized product, the suggestion's."""
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(label__path__icontains=value)
                               | Q(label__isnull=True, suggested__path__icontains=value))

    def under_prefix(self, queryset, name, value):
        """Products whose semantic ID in the flag's run starts with the prefix."""
        codes = SemanticId.objects.filter(run_id=OuterRef("run_id"), product_id=OuterRef("product_id")).filter(
            Q(code__startswith=value + "_") | Q(code=value))
        return queryset.filter(Exists(codes))

    def in_band(self, queryset, name, value):
        return filter_flags(queryset, CONFIDENCE_BANDS[value])
