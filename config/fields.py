"""Serializer fields for JSON bodies that take only what their schema says: DRF's FloatField also takes
true and false (as 1.0 and 0.0) and its CharField takes numbers (as their text)."""

from __future__ import annotations

from rest_framework import serializers


class NumberField(serializers.FloatField):
    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class TextField(serializers.CharField):
    default_error_messages = {"not_text": "a string"}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_text")
        return super().to_internal_value(data)
