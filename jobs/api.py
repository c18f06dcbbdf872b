"""REST API for background jobs: status, progress, result, retry."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import IsAdmin
from jobs.models import Job
from jobs.runner import fail_abandoned_jobs, retry_job


class JobSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = ["id", "kind", "status", "progress", "message", "result", "created_by", "created_at", "updated_at",
                  "chunks_total", "chunks_done"]  # a chunked job (embed): its chunks, and how many are done


class JobViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Background jobs (imports, training): status, progress, and the result (row errors on a bad file)."""

    permission_classes = [IsAdmin]
    queryset = Job.objects.select_related("created_by").order_by("-created_at", "-id")
    serializer_class = JobSerializer
    filterset_fields = ["kind", "status"]

    def get_queryset(self):
        fail_abandoned_jobs()  # a job whose worker died reads as failed
        return super().get_queryset()

    @extend_schema(request=None, responses={202: JobSerializer})
    @action(detail=True, methods=["post"], pagination_class=None)
    def retry(self, request, pk=None):
        """Queue a failed job again as a new job with the same parameters."""
        job = self.get_object()
        try:
            again = retry_job(job=job, user=request.user)
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(JobSerializer(again).data, status=status.HTTP_202_ACCEPTED)
