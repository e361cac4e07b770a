"""The API's keys follow their mounted Secret (prequal_api.key_refresh): a rotation's second
phase reaches a running API without a restart, a set in use is never changed under a request,
and a change that does not load keeps the keys in use and logs no key material."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from prequal import sealing
from prequal.settings import load_settings
from prequal_api.key_refresh import ApiKeys, KeyHolder, KeyRefresher
from prequal_api.settings import ApiSettings
from prequalctl.keys import for_role, generate_keys

_API_ENV = {"DATABASE_URL": "postgresql://u:p@127.0.0.1:1/db", "OIDC_ISSUER": "http://idp/"}
_LISTS = ("SEALING_PUBLIC_KEYS", "PAN_INDEX_KEYS", "WEBHOOK_SEALING_PUBLIC_KEYS")
_ACTIVE = ("SEALING_ACTIVE_KEY_ID", "PAN_INDEX_ACTIVE_KEY_ID", "WEBHOOK_SEALING_ACTIVE_KEY_ID")


class MountedSecret:
    """A Secret volume as kubelet writes it: files are links through `..data`, and an update
    swaps that one link to a new timestamped folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0

    def write(self, values: dict[str, str]) -> None:
        self.generation += 1
        folder = self.root / f"..2026_12_02_{self.generation}"
        folder.mkdir()
        for name, value in values.items():
            (folder / name.lower()).write_text(value)
            link = self.root / name.lower()
            if not link.is_symlink():
                link.symlink_to(Path("..data") / name.lower())
        staged = self.root / "..data_tmp"
        staged.symlink_to(folder.name)
        staged.replace(self.root / "..data")


@pytest.fixture
def mounted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MountedSecret:
    for name in (*_LISTS, *_ACTIVE, "PAN_BLIND_INDEX_KEY", "SEALING_PRIVATE_KEYS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in _API_ENV.items():
        monkeypatch.setenv(name, value)
    root = tmp_path / "secrets"
    root.mkdir()
    monkeypatch.setenv("SECRETS_DIR", str(root))
    return MountedSecret(root)


def _refresher(holder: KeyHolder) -> KeyRefresher:
    return KeyRefresher(holder, lambda: load_settings(ApiSettings), interval_seconds=1)


def test_the_second_phase_of_a_rotation_reaches_a_running_api(mounted: MountedSecret) -> None:
    old, new = generate_keys("v1"), generate_keys("v2")
    first = for_role(old, "api")
    mounted.write(first)
    holder = KeyHolder(ApiKeys.from_settings(load_settings(ApiSettings)))
    refresher = _refresher(holder)
    in_use = holder.current
    assert not refresher.refresh()  # nothing changed: the same set stays
    assert holder.current is in_use

    # Phase one: the new keys are distributed, the old ones stay active.
    distributed = dict(first)
    for name in _LISTS:
        distributed[name] = f"{old[name]},{new[name]}"
    mounted.write(distributed)
    assert refresher.refresh()
    assert holder.current.sealer.key_id == "v1"
    assert sorted(holder.current.index_keys.keys) == ["v1", "v2"]

    # Phase two: the new keys become active, in the running process.
    mounted.write({**distributed, **dict.fromkeys(_ACTIVE, "v2")})
    assert refresher.refresh()
    keys = holder.current
    assert keys.sealer.key_id == "v2"
    assert keys.index_keys.active_key_id == "v2"
    assert keys.webhook_sealer.key_id == "v2"
    # What the API now seals opens with the new private key alone.
    application_id = uuid.uuid4()
    sealed = keys.sealer.seal(application_id, "ABCDE1234F", b"")
    opener = sealing.Opener(
        sealing.parse_key_list(new["SEALING_PRIVATE_KEYS"], "SEALING_PRIVATE_KEYS")
    )
    assert len(opener.open_key(sealed.sealed_key, application_id)) == 32
    # A request that took the earlier set keeps it whole.
    assert in_use.sealer.key_id == "v1"
    assert list(in_use.index_keys.keys) == ["v1"]


def test_a_change_that_does_not_load_keeps_the_keys_and_logs_no_key(
    mounted: MountedSecret, caplog: pytest.LogCaptureFixture
) -> None:
    keys = for_role(generate_keys("v1"), "api")
    mounted.write(keys)
    holder = KeyHolder(ApiKeys.from_settings(load_settings(ApiSettings)))
    in_use = holder.current
    # An active id with no key behind it (a half-done manual edit).
    mounted.write({**keys, "SEALING_ACTIVE_KEY_ID": "v9"})
    with caplog.at_level(logging.WARNING):
        assert not _refresher(holder).refresh()
    assert holder.current is in_use
    assert "sealing key id 'v9' has no public key" in caplog.text
    for value in keys.values():
        for _key_id, _, material in (part.partition(":") for part in value.split(",")):
            assert not material or material not in caplog.text


def test_environment_keys_are_not_reloaded_from_files(
    mounted: MountedSecret, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Environment variables win over files (prequal.settings): `make run` sets keys there."""
    for name, value in for_role(generate_keys("v1"), "api").items():
        monkeypatch.setenv(name, value)
    mounted.write(for_role(generate_keys("v2"), "api"))
    holder = KeyHolder(ApiKeys.from_settings(load_settings(ApiSettings)))
    assert not _refresher(holder).refresh()
    assert holder.current.sealer.key_id == "v1"
