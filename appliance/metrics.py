"""Prometheus metrics of one running service (`GET /metrics`).

One registry per application instance, not the library's global one, so two apps in one
process (tests, `dev`) never share or double-register series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# ZATCA answers in tens of milliseconds to tens of seconds; token operations in sub-milliseconds
# (signing) to tens of milliseconds (key generation in a large token).
_ZATCA_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_HSM_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

# Litestar appends "; charset=utf-8" to text/* media types itself.
CONTENT_TYPE = "text/plain; version=0.0.4"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.registrations = Counter(
            "zatca_appliance_registrations",
            "Device registrations by environment, invoice format and outcome",
            ["environment", "format", "outcome"],
            registry=self.registry,
        )
        self.zatca_request_seconds = Histogram(
            "zatca_appliance_zatca_request_seconds",
            "Latency of calls to ZATCA by endpoint and HTTP status (or failure kind)",
            ["endpoint", "status"],
            buckets=_ZATCA_BUCKETS,
            registry=self.registry,
        )
        self.hsm_operation_seconds = Histogram(
            "zatca_appliance_hsm_operation_seconds",
            "Latency of PKCS#11 token operations by operation",
            ["operation"],
            buckets=_HSM_BUCKETS,
            registry=self.registry,
        )
        self.token_device_keys = Gauge(
            "zatca_appliance_token_device_keys",
            "Device keys in the token, as counted at start-up and kept up to date since",
            registry=self.registry,
        )
        self.audit_records = Counter(
            "zatca_appliance_audit_records",
            "Audit records written by event",
            ["event"],
            registry=self.registry,
        )

    def observe_zatca(self, endpoint: str, status: str, seconds: float) -> None:
        self.zatca_request_seconds.labels(endpoint=endpoint, status=status).observe(seconds)

    def observe_hsm(self, operation: str, seconds: float) -> None:
        self.hsm_operation_seconds.labels(operation=operation).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
