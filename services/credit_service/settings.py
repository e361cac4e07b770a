"""credit-service settings (docs/configuration.md): the consumer's, plus the keys that open.

The credit service is the only process that holds sealing private keys (and the legacy,
decrypt-only PAN keyring for ciphertexts written before migration 0007).
"""

from __future__ import annotations

from prequal.consumer_process import ConsumerSettings
from prequal.settings import SealingPrivateKeySettings


class CreditSettings(ConsumerSettings, SealingPrivateKeySettings):
    metrics_port: int = 9102
    consumer_group: str = "credit-service"
