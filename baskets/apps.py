from django.apps import AppConfig


class BasketsConfig(AppConfig):
    name = "baskets"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from baskets.core.copurchase import COPURCHASE_WEIGHT
        from baskets.services import on_run_activated
        from jobs.kinds import register_job_kind
        from quantizer.inputs import register_extra_input
        from quantizer.services import run_activated

        register_job_kind("cluster_copurchase", "baskets.services.cluster_copurchase_job",
                          label="clusters bought together")
        register_job_kind("next_item", "baskets.services.next_item_job", label="customers may add next")
        register_extra_input("copurchase", "baskets.services.copurchase_rows", weight=COPURCHASE_WEIGHT)
        run_activated.connect(on_run_activated, dispatch_uid="baskets-cluster-copurchase-on-activation")
