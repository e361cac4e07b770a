"""A pipeline's Kafka user names belong to it alone, so deleting one pipeline's users can never
take another live pipeline's: `<namespace>.<pipeline>.<service>` with dot-free namespaces and
service names names one (namespace, pipeline, service), even when pipeline names hold dots."""

from __future__ import annotations

import itertools

from loan_operator.kafka_principals import principal_name
from loan_operator.kube import PipelineRef
from prequal.kafka_acl import SERVICE_PRINCIPALS


def test_user_names_never_collide_across_pipelines_even_with_dotted_names() -> None:
    namespaces = ["lending", "retail", "a"]
    # Names that try to look like another pipeline's user: dots, service names inside.
    pipelines = ["retail", "retail.publisher", "publisher", "a.retail", "retail.credit-service"]
    owners: dict[str, tuple[str, str, str]] = {}
    for ns, name, role in itertools.product(namespaces, pipelines, SERVICE_PRINCIPALS):
        user = principal_name(PipelineRef(ns, name, "uid"), role)
        assert owners.setdefault(user, (ns, name, role)) == (ns, name, role), user
    assert len(owners) == len(namespaces) * len(pipelines) * len(SERVICE_PRINCIPALS)


def test_no_service_name_has_a_dot() -> None:
    assert not any("." in role for role in SERVICE_PRINCIPALS)
