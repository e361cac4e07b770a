"""The API's keys follow their Secret without a restart.

A rotation is two-phase (docs/data-protection.md): the operator first adds the new key to every
reader, then, a distribution period later, makes it the active one in the API's Secret. The API
read its keys once, at start, so after the second phase running pods kept sealing to the old
key and digesting under the old index key until something restarted them. Now a task re-reads
the settings every `KEY_REFRESH_SECONDS` (kubelet updates a mounted Secret's files in place,
atomically, within about a minute) and, when the key material changed, swaps in a new set of
keys. A request takes one set at its start and uses it to the end, so it never mixes two rings.
A change that does not load (a half-edited local file, a wrong key) is logged by field name and
the keys in use stay.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import SecretStr, ValidationError

from prequal import blind_index, sealing
from prequal_api.settings import ApiSettings

log = logging.getLogger(__name__)

# The settings a rotation changes; a digest of their values tells whether anything did.
KEY_FIELDS = (
    "sealing_public_keys",
    "sealing_active_key_id",
    "pan_index_keys",
    "pan_index_active_key_id",
    "pan_blind_index_key",
    "webhook_sealing_public_keys",
    "webhook_sealing_active_key_id",
)


def key_material(settings: ApiSettings) -> str:
    """A digest of the key settings' values (so no second copy of an index key is kept)."""
    digest = hashlib.sha256()
    for name in KEY_FIELDS:
        value = getattr(settings, name)
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value or "")
        digest.update(name.encode() + b"=" + text.encode() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class ApiKeys:
    """One consistent set of the API's keys: what seals, what digests, and where they came from."""

    sealer: sealing.Sealer
    index_keys: blind_index.IndexKeyRing
    webhook_sealer: sealing.Sealer
    material: str

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> ApiKeys:
        return cls(
            sealer=settings.sealer(),
            index_keys=settings.index_key_ring(),
            webhook_sealer=settings.webhook_sealer(),
            material=key_material(settings),
        )

    def describe(self) -> str:
        """Key ids only (they are not secret)."""
        return (
            f"sealing key {self.sealer.key_id}, index key {self.index_keys.active_key_id}"
            f" (of {len(self.index_keys.keys)}), webhook sealing key {self.webhook_sealer.key_id}"
        )


class KeyHolder:
    """The keys in use; `current` is replaced as a whole, never changed in place."""

    def __init__(self, keys: ApiKeys) -> None:
        self.current = keys


class KeyRefresher:
    def __init__(
        self, holder: KeyHolder, load: Callable[[], ApiSettings], interval_seconds: float
    ) -> None:
        self._holder = holder
        self._load = load
        self._interval = interval_seconds

    def refresh(self) -> bool:
        """Loads the settings again; swaps the keys in when their material changed."""
        try:
            settings = self._load()
            if key_material(settings) == self._holder.current.material:
                return False
            keys = ApiKeys.from_settings(settings)
        except ValidationError as exc:
            # Field and message only: the error's own text (str(exc)) carries the value refused.
            reasons = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
            )
            log.warning("key settings changed but do not load (%s); the keys in use stay", reasons)
            return False
        except (ValueError, sealing.KeyFormatError, blind_index.IndexKeyError) as exc:
            log.warning(
                "key settings changed but do not load (%s); the keys in use stay",
                type(exc).__name__,
            )
            return False
        previous = self._holder.current
        self._holder.current = keys
        log.info("keys reloaded: %s (was: %s)", keys.describe(), previous.describe())
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await asyncio.to_thread(self.refresh)
