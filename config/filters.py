"""Query filters that refuse what their schema does not allow.

django-filter's defaults accept a float for an integer id, read an unknown word as "no filter" for a
boolean and an empty value as "no filter"; every API filter set derives from `FilterSet`
here (the DRF backend below builds `filterset_fields` on it too), so a value the schema forbids is a 400.
Ids are declared and checked as integers from 1 to MAX_ID.
"""

from __future__ import annotations

import django_filters
from django import forms
from django.db import models
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema_field

MAX_ID = 2**53 - 1  # the largest integer a JSON client reads exactly


class StrictIntegerField(forms.IntegerField):
    widget = forms.TextInput


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(django_filters.NumberFilter):
    """An object's id: 1 to MAX_ID. An id that matches nothing filters everything out."""

    field_class = StrictIntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": 2**31 - 1})
class IntegerFilter(django_filters.NumberFilter):
    field_class = StrictIntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", 2**31 - 1)
        super().__init__(*args, **kwargs)


class StrictNullBooleanField(forms.NullBooleanField):
    widget = forms.TextInput  # NullBooleanSelect turns an unknown word into None (no filter)
    WORDS = {"true": True, "1": True, "false": False, "0": False}

    def to_python(self, value):
        if value is None:
            return None
        word = str(value).strip().lower()
        if word not in self.WORDS:
            raise forms.ValidationError("true or false")
        return self.WORDS[word]

    def validate(self, value):
        pass


class BooleanFilter(django_filters.BooleanFilter):
    field_class = StrictNullBooleanField


class FilterSet(django_filters.rest_framework.FilterSet):
    """A choice, number or boolean given empty (`?flavor=`) is refused, not read as "any" (an absent one is); the
    strict filters for booleans and foreign keys named in `Meta.fields` too."""

    def is_valid(self):
        valid = super().is_valid()
        for name, query_filter in self.filters.items():
            if isinstance(query_filter, django_filters.CharFilter):
                continue  # free text: empty matches everything, as its schema allows
            if name in self.data and "" in self.data.getlist(name):
                self.form.add_error(name, "give a value, or leave the parameter out")
                valid = False
        return valid

    @classmethod
    def filter_for_lookup(cls, field, lookup_type):
        filter_class, params = super().filter_for_lookup(field, lookup_type)
        if isinstance(field, models.BooleanField):
            return BooleanFilter, {}
        if isinstance(field, models.ForeignKey):
            return IdFilter, {}
        return filter_class, params


class FilterBackend(DjangoFilterBackend):
    filterset_base = FilterSet


class StrictFloatField(forms.FloatField):
    widget = forms.TextInput


@extend_schema_field({"type": "number", "minimum": 0, "maximum": 1})
class FractionFilter(django_filters.NumberFilter):
    """A number from 0 to 1 (a confidence, a share)."""

    field_class = StrictFloatField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 0.0)
        kwargs.setdefault("max_value", 1.0)
        super().__init__(*args, **kwargs)
