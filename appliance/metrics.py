"""Prometheus metrics of one running service (`GET /metrics`).

One registry per application instance, not the library's global one, so two apps in one
process (tests, `dev`) never share or double-register series.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

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
        self.onboarding_step_seconds = Histogram(
            "zatca_appliance_onboarding_step_seconds",
            "Time of each step of a registration or renewal (keygen, csr, ZATCA calls, compliance "
            "documents, registry, total), measured by the service",
            ["operation", "step"],
            buckets=_ZATCA_BUCKETS,
            registry=self.registry,
        )
        self.renewals = Counter(
            "zatca_appliance_renewals",
            "Production CSID renewals by environment, ZATCA's path (200 issued, 428 compliance) and outcome",
            ["environment", "path", "outcome"],
            registry=self.registry,
        )
        self.certificate_earliest_expiry = Gauge(
            "zatca_appliance_certificate_earliest_expiry_timestamp_seconds",
            "When the first active device certificate of the environment expires (Unix time)",
            ["environment"],
            registry=self.registry,
        )
        # What the gauge shows, so an activation can lower it without reading it back.
        self._earliest_expiry: dict[str, datetime] = {}
        self.audit_records = Counter(
            "zatca_appliance_audit_records",
            "Audit records written by event",
            ["event"],
            registry=self.registry,
        )
        self.invoices_issued = Counter(
            "zatca_appliance_invoices_issued",
            "Invoices stored in a device's chain, by source (model, submitted) and type",
            ["source", "type"],
            registry=self.registry,
        )
        self.invoice_deliveries = Counter(
            "zatca_appliance_invoice_deliveries",
            "Delivery attempts to ZATCA by endpoint and outcome (the invoice status, or retry)",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "zatca_appliance_outbox_depth",
            "Invoices stored but not yet answered for good by ZATCA",
            registry=self.registry,
        )
        self.outbox_oldest_age_seconds = Gauge(
            "zatca_appliance_outbox_oldest_age_seconds",
            "Age of the oldest undelivered invoice (simplified ones must reach ZATCA within 24 h)",
            registry=self.registry,
        )
        self.webhook_depth = Gauge(
            "zatca_appliance_webhook_depth",
            "Invoice status-change events not yet accepted by the webhook receiver",
            registry=self.registry,
        )
        self.webhook_posts = Counter(
            "zatca_appliance_webhook_posts",
            "Webhook POST attempts by outcome (delivered, retry)",
            ["outcome"],
            registry=self.registry,
        )
        self.invoice_seconds = Histogram(
            "zatca_appliance_invoice_seconds",
            "Time to render, sign and store one Model invoice (lock wait included)",
            buckets=(*_HSM_BUCKETS, 2.5, 5.0),
            registry=self.registry,
        )

    def observe_zatca(self, endpoint: str, status: str, seconds: float) -> None:
        self.zatca_request_seconds.labels(endpoint=endpoint, status=status).observe(seconds)

    def observe_hsm(self, operation: str, seconds: float) -> None:
        self.hsm_operation_seconds.labels(operation=operation).observe(seconds)

    def set_earliest_expiry(self, by_environment: Mapping[str, datetime]) -> None:
        """Replace the expiry series: an environment without active devices has none."""
        self.certificate_earliest_expiry.clear()
        self._earliest_expiry = dict(by_environment)
        for environment, moment in by_environment.items():
            self.certificate_earliest_expiry.labels(environment=environment).set(moment.timestamp())

    def note_activation_expiry(self, environment: str, moment: datetime) -> None:
        """A device just became active with a certificate ending at `moment`.

        An activation only adds a certificate, so the earliest expiry can only move earlier: no
        registry read is needed (one thread hop and a scan fewer per registration). Whatever
        removes or replaces a certificate (renewal, start-up, the periodic refresh) still
        recomputes the whole gauge with `set_earliest_expiry`.
        """
        known = self._earliest_expiry.get(environment)
        if known is None or moment < known:
            self._earliest_expiry[environment] = moment
            self.certificate_earliest_expiry.labels(environment=environment).set(moment.timestamp())

    def render(self) -> bytes:
        return generate_latest(self.registry)
