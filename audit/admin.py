from django.contrib import admin

from audit.models import AuditReport, Decision, Flag


@admin.register(Flag)
class FlagAdmin(admin.ModelAdmin):
    list_display = ("id", "product", "queue", "status", "confidence", "label", "suggested", "claimed_by")
    list_filter = ("queue", "status")
    raw_id_fields = ("product", "run", "label", "suggested", "claimed_by", "first_reviewer")
    list_select_related = ("product", "label", "suggested", "claimed_by")


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    """Decisions are immutable history: readable here, never edited."""

    list_display = ("created_at", "reviewer", "action", "product", "from_category", "to_category")
    list_filter = ("action",)
    list_select_related = ("reviewer", "product", "from_category", "to_category")

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


admin.site.register(AuditReport)
