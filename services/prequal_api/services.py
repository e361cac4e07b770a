"""What the handlers need, built once per process by the composition root (`app.create_app`)."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from prequal_api.metrics import ApiMetrics
from prequal_api.status import ErasureService, StatusService
from prequal_api.submission import SubmissionService


@dataclass(frozen=True)
class Services:
    pool: AsyncConnectionPool
    pool_timeout: float
    submission: SubmissionService
    status: StatusService
    erasure: ErasureService
    metrics: ApiMetrics
