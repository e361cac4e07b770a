"""The local stack runner: real PostgreSQL, Kafka, Kubernetes control plane and Prometheus as
plain processes on loopback, used by the pytest fixtures and by `make run`.

Each component starts on a free port with its own data directory, waits until it really
answers, and stops cleanly; a component that fails to start raises `ComponentStartError` with
the tail of its log.
"""

from devstack.process import ComponentStartError, ManagedProcess

__all__ = ["ComponentStartError", "ManagedProcess"]
