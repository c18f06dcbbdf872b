"""Review pages beyond the single flag: the bulk grid, the team view and its CSV exports."""

from django.urls import path

from audit import views

urlpatterns = [
    path("review/grid/", views.flag_grid, name="flag-grid"),
    path("review/bulk/confirm/", views.bulk_confirm, name="ui-bulk-confirm"),
    path("review/bulk/decide/", views.bulk_apply, name="ui-bulk-decide"),
    path("review/bulk/undo/", views.bulk_undo, name="ui-bulk-undo"),
    path("review/building/", views.building_status, name="building-status"),
    path("team/", views.team, name="team"),
    path("team/export/audit/<int:run_id>.csv", views.export_audit, name="team-export-audit"),
    path("team/export/decisions.csv", views.export_decisions, name="team-export-decisions"),
]
