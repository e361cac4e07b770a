"""Settings: keys from env or mounted Secret files; malformed keys rejected with a clear message."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from credit_service.settings import CreditSettings
from prequal.settings import IndexKeySettings, PanKeySettings, load_settings
from prequal_api.settings import ApiSettings
from prequalctl.keys import for_role, generate_keys


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in (
        "PAN_ENCRYPTION_KEYS",
        "PAN_ACTIVE_KEY_ID",
        "PAN_BLIND_INDEX_KEY",
        "PAN_INDEX_KEYS",
        "PAN_INDEX_ACTIVE_KEY_ID",
        "SEALING_PUBLIC_KEYS",
        "SEALING_ACTIVE_KEY_ID",
        "SEALING_PRIVATE_KEYS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path / "absent"))
    return monkeypatch


_API_ENV = {"DATABASE_URL": "postgresql://u:p@127.0.0.1:1/db", "OIDC_ISSUER": "http://idp/"}


def test_generated_keys_load_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    keys = generate_keys("v3")
    for name, value in {**for_role(keys, "api"), **_API_ENV}.items():
        clean_env.setenv(name, value)
    api = load_settings(ApiSettings)
    assert api.sealer().key_id == "v3"
    ring = api.index_key_ring()
    assert ring.active_key_id == "v3"
    assert list(ring.keys) == ["v3"]
    assert not hasattr(api, "sealing_private_keys")
    assert not hasattr(api, "pan_encryption_keys")
    clean_env.setenv("SEALING_PRIVATE_KEYS", keys["SEALING_PRIVATE_KEYS"])
    credit = load_settings(CreditSettings)
    assert credit.opener().key_ids == ["v3"]
    assert credit.legacy_keyring() == {}


def test_keys_load_from_files_in_secrets_dir(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name, value in {**for_role(generate_keys("v1"), "api"), **_API_ENV}.items():
        (secrets / name.lower()).write_text(value)
    clean_env.setenv("SECRETS_DIR", str(secrets))
    assert load_settings(ApiSettings).sealing_active_key_id == "v1"


def test_an_api_without_the_active_public_key_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in {**for_role(generate_keys("v1"), "api"), **_API_ENV}.items():
        clean_env.setenv(name, value)
    clean_env.setenv("SEALING_ACTIVE_KEY_ID", "v2")
    with pytest.raises(ValidationError, match="'v2' has no public key"):
        load_settings(ApiSettings)


def test_a_keyring_with_rotated_keys_loads(clean_env: pytest.MonkeyPatch) -> None:
    ring = f"v1:{_b64(os.urandom(32))},v2:{_b64(os.urandom(32))}"
    clean_env.setenv("PAN_ENCRYPTION_KEYS", ring)
    clean_env.setenv("PAN_ACTIVE_KEY_ID", "v2")
    clean_env.setenv("PAN_BLIND_INDEX_KEY", _b64(os.urandom(32)))
    assert sorted(load_settings(PanKeySettings).keyring()) == ["v1", "v2"]


SHORT = _b64(os.urandom(16))


@pytest.mark.parametrize(
    ("keys", "active", "index", "message"),
    [
        (f"v1:{SHORT}", "v1", None, "must decode to 32 bytes, got 16"),
        ("v1:not*base64", "v1", None, "not valid base64"),
        ("v1changeme", "v1", None, "not `key_id:base64key`"),
        ("v1:changeme", "v1", None, "placeholder"),
        (f"v 1:{_b64(os.urandom(32))}", "v 1", None, "key id must match"),
        (None, "v9", None, "PAN_ACTIVE_KEY_ID 'v9' is not in PAN_ENCRYPTION_KEYS"),
        (None, "v1", _b64(bytes(32)), "almost no entropy"),
        (None, "v1", SHORT, "PAN_BLIND_INDEX_KEY must decode to 32 bytes"),
    ],
)
def test_malformed_keys_are_rejected_naming_the_setting_but_not_the_key(
    clean_env: pytest.MonkeyPatch,
    keys: str | None,
    active: str,
    index: str | None,
    message: str,
) -> None:
    valid = {
        "PAN_ENCRYPTION_KEYS": f"v1:{_b64(os.urandom(32))}",
        "PAN_BLIND_INDEX_KEY": _b64(os.urandom(32)),
    }
    clean_env.setenv("PAN_ENCRYPTION_KEYS", keys or valid["PAN_ENCRYPTION_KEYS"])
    clean_env.setenv("PAN_ACTIVE_KEY_ID", active)
    clean_env.setenv("PAN_BLIND_INDEX_KEY", index or valid["PAN_BLIND_INDEX_KEY"])
    with pytest.raises(ValidationError) as caught:
        load_settings(PanKeySettings)
    text = str(caught.value)
    assert message in text
    assert SHORT not in text
    assert valid["PAN_BLIND_INDEX_KEY"] not in text


def test_the_index_ring_takes_the_pre_0010_key_as_v0(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PAN_BLIND_INDEX_KEY", _b64(os.urandom(32)))
    alone = load_settings(IndexKeySettings).index_key_ring()
    assert (list(alone.keys), alone.active_key_id) == (["v0"], "v0")
    clean_env.setenv("PAN_INDEX_KEYS", f"v1:{_b64(os.urandom(32))}")
    with pytest.raises(ValidationError, match="PAN_INDEX_ACTIVE_KEY_ID is required"):
        load_settings(IndexKeySettings)
    clean_env.setenv("PAN_INDEX_ACTIVE_KEY_ID", "v1")
    both = load_settings(IndexKeySettings).index_key_ring()
    assert (both.key_ids, both.active_key_id) == (["v1", "v0"], "v1")
    clean_env.setenv("PAN_INDEX_KEYS", f"v0:{_b64(os.urandom(32))}")
    with pytest.raises(ValidationError, match="'v0' is reserved"):
        load_settings(IndexKeySettings)


@pytest.mark.parametrize(
    ("keys", "active", "message"),
    [
        (f"v1:{SHORT}", "v1", "PAN_INDEX_KEYS key 'v1' must decode to 32 bytes"),
        (f"v1:{_b64(os.urandom(32))}", "v2", "PAN_INDEX_ACTIVE_KEY_ID 'v2' is not in"),
        ("", "", "PAN_INDEX_KEYS (or the older PAN_BLIND_INDEX_KEY) is required"),
    ],
)
def test_a_bad_index_ring_is_refused_naming_the_setting_not_the_key(
    clean_env: pytest.MonkeyPatch, keys: str, active: str, message: str
) -> None:
    clean_env.setenv("PAN_INDEX_KEYS", keys)
    clean_env.setenv("PAN_INDEX_ACTIVE_KEY_ID", active)
    with pytest.raises(ValidationError) as caught:
        load_settings(IndexKeySettings)
    assert message in str(caught.value)
    assert SHORT not in str(caught.value)
