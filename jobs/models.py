from django.conf import settings
from django.db import models

from jobs.kinds import kind_label


class Job(models.Model):
    """A unit of background work (import, embed, train, audit, pipeline) whose progress a page can read."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    kind = models.CharField(max_length=40)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True, default="")
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # A chunked job (jobs.runner.Chunked): its chunks, how many are done, and the plan its chunk tasks read.
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    plan = models.JSONField(default=dict, blank=True)  # {"run_chunk", "finish", "cleanup", "state"}
    # True while its chunks (or the callback that finishes it) are queued or running: nothing of the job's own
    # runs, so it has no heartbeat; its liveness is its running chunks' heartbeats.
    awaiting_chunks = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def kind_label(self) -> str:
        """The kind as pages name it (`register_job_kind(label=...)`)."""
        return kind_label(self.kind)

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class JobChunk(models.Model):
    """One part of a chunked job, run by its own Celery task (`jobs.run_chunk`) on any worker."""

    Status = Job.Status  # a chunk moves through the same states as its job

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    params = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    result = models.JSONField(default=dict, blank=True)
    worker = models.CharField(max_length=200, blank=True, default="")  # the Celery hostname that ran it
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="jobchunk_unique_index")]

    def __str__(self):
        return f"chunk {self.index} of {self.job}"
