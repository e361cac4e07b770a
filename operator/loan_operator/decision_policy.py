"""The decision policy document the operator hands to the decision service, and its version.

The document is the LoanPipeline's `decisionPolicy` with every default filled in (the API server
fills them from the CRD; this fills them again for specs built by hand, as in unit tests). Its
version is the first 16 hex digits of the SHA-256 of its canonical JSON (keys sorted, no
spaces): the decision service computes the same hash from the same document and refuses to
start when the two disagree (docs/decisions.md).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

VERSION_HEX_DIGITS = 16

# The CRD's defaults (manifests/crds/loanpipelines.prequal.dev.yaml), which are also the
# decision service's (decision_service/policy.py); a unit test holds the three together.
DEFAULT_DECISION_POLICY: Mapping[str, Any] = {
    "minCreditScore": 650,
    "termMonths": 48,
    "scoreBands": [
        {"name": "PRIME", "minScore": 750, "annualRate": "0.1200"},
        {"name": "NEAR_PRIME", "minScore": 700, "annualRate": "0.1450"},
        {"name": "STANDARD", "minScore": 300, "annualRate": "0.1750"},
    ],
    "processingFee": {"rate": "0.0200", "minimum": "1000.00", "maximum": "25000.00"},
    "limits": {"maxOfferAmount": "10000000.00"},
    "offerValidityDays": 30,
    "manualReviewOffer": {"enabled": False, "shareOfCapacity": "0.5000"},
}


def with_defaults(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """The document as the service reads it: a nested object's missing keys take defaults."""
    document = copy.deepcopy(dict(DEFAULT_DECISION_POLICY))
    for key, value in (raw or {}).items():
        default = document.get(key)
        if isinstance(default, dict) and isinstance(value, Mapping):
            document[key] = {**default, **value}
        else:
            document[key] = copy.deepcopy(value)
    return document


def canonical_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def policy_version(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()[:VERSION_HEX_DIGITS]
