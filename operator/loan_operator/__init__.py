"""loan-operator: a kopf operator for `LoanPipeline` resources (prequal.dev/v1alpha1).

Layers: `handlers` (thin kopf registrations) hand watch events to `worker` (one thread per
pipeline, the timing and backoff), which calls `reconcile` (converge spec → world, observe lag);
the decisions are pure functions in `topics`, `scaling`, `keyring` and `conditions`; the only
modules that talk to the outside are the adapters `kafka_admin` (confluent_kafka) and `kube`
(the kubernetes client).
"""
