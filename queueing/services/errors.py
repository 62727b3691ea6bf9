"""Typed errors of the queue services, mapped to protocol error codes by core.errors."""

from __future__ import annotations

from core.errors import Conflict, Forbidden, NotFound, ProtocolError, ValidationFailed


class AttemptSuperseded(Conflict):
    code = "attempt_superseded"
    message = "A newer attempt of this job exists; this report changes nothing."


class JobFinished(Conflict):
    code = "job_finished"
    message = "The job is already finished."


class AttemptNotOwned(Forbidden):
    code = "attempt_not_owned"
    message = "This attempt belongs to another worker."


class JobNotFound(NotFound):
    code = "job_not_found"
    message = "No such job."


class AttemptNotFound(NotFound):
    code = "attempt_not_found"
    message = "No such attempt for this job."


class IdempotencyKeyReused(ValidationFailed):
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was used with a different request."


class EvidenceTypeUnsupported(ProtocolError):
    status = 415
    code = "unsupported_media_type"
    message = "Evidence is one image/png or image/jpeg body."


class EvidenceUndecodable(ValidationFailed):
    code = "evidence_undecodable"
    message = "The body does not decode as the image type it was sent as."


class EvidenceLimitReached(Conflict):
    code = "evidence_limit_reached"
    message = "This attempt already has as many screenshots as one attempt may keep."
