"""Issue 13 item 13: after its one-time export an Xml/Pdf key is no longer extractable in the token."""

from __future__ import annotations

import uuid

import pytest

from appliance.errors import KeyNotExportable
from appliance.hsm import KeyPolicy, KeyStore
from tests.fixtures.softhsm import SoftHsmToken
from tests.support.pkcs11_tool import list_private_keys


def test_an_exported_key_cannot_be_exported_again(keystore: KeyStore, softhsm: SoftHsmToken) -> None:
    device_id = uuid.uuid4()
    keystore.generate_device_key(device_id, KeyPolicy.EXPORTABLE)
    before = list_private_keys(softhsm)[device_id.hex].access.split(", ")
    assert "extractable" in before

    assert "BEGIN EC PRIVATE KEY" in keystore.export_private_key(device_id)

    with pytest.raises(KeyNotExportable):
        keystore.export_private_key(device_id)
    access = list_private_keys(softhsm)[device_id.hex].access.split(", ")
    assert "extractable" not in access and "sensitive" in access
    [info] = [key for key in keystore.list_device_keys() if key.device_id == device_id]
    # Still told apart from a sealed key: it was generated exportable and did leave once.
    assert (info.extractable, info.never_extractable, info.policy) == (False, False, KeyPolicy.EXPORTABLE)
    keystore.destroy_device_key(device_id)
