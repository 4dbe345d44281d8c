"""Device signatures interoperate with eth-account, the library devices are told to sign with."""

from __future__ import annotations

import secrets

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from epcis import signatures
from epcis.rejects import EventRejected, RejectCode
from epcis.signatures import (
    address_of,
    normalise_address,
    parse_signature,
    recover_address,
    sign_digest,
)


def test_eth_account_signature_recovers_the_signer() -> None:
    account = Account.create()
    digest = secrets.token_bytes(32)
    signed = Account.sign_message(encode_defunct(primitive=digest), account.key)
    signature = parse_signature("0x" + signed.signature.hex().removeprefix("0x"))
    assert recover_address(digest, signature) == account.address.lower()


def test_our_signature_is_what_eth_account_recovers() -> None:
    key = secrets.token_bytes(32)
    digest = secrets.token_bytes(32)
    signature = sign_digest(key, digest)
    recovered = Account.recover_message(encode_defunct(primitive=digest), signature=signature)
    assert recovered.lower() == address_of(key) == Account.from_key(key).address.lower()


def test_signature_over_another_digest_recovers_another_address() -> None:
    key = secrets.token_bytes(32)
    signature = parse_signature(sign_digest(key, b"\x01" * 32))
    assert recover_address(b"\x02" * 32, signature) != address_of(key)


@pytest.mark.parametrize(
    "value", [None, 42, "", "0x1234", "0x" + "zz" * 65, "ab" * 65, "0x" + "00" * 64 + "05"]
)
def test_malformed_signatures_are_refused(value: object) -> None:
    with pytest.raises(EventRejected) as info:
        parse_signature(value)
    assert info.value.code is RejectCode.SIGNATURE_MALFORMED


def test_unrecoverable_signature_is_malformed() -> None:
    with pytest.raises(EventRejected) as info:
        recover_address(b"\x00" * 32, bytes(64) + b"\x1b")
    assert info.value.code is RejectCode.SIGNATURE_MALFORMED


def test_addresses_are_normalised_to_lower_case() -> None:
    assert normalise_address("0x" + "AB" * 20) == "0x" + "ab" * 20
    with pytest.raises(ValueError):
        normalise_address("0x1234")


def test_recovery_answers_the_same_from_its_address_cache_and_past_its_bound() -> None:
    # More keys than the public key -> address cache holds. Each key is recovered twice in a
    # row, so the second answer comes from the cache (two passes over all the keys would not
    # hit at all: least recently used goes first); the first keys are evicted on the way and
    # recomputed at the end, where eth-account checks them.
    signatures._address_of_public_key.cache_clear()  # this test's hits, not earlier tests'
    keys = [secrets.token_bytes(32) for _ in range(signatures.ADDRESS_CACHE_SIZE + 3)]
    for key in keys:
        for _ in range(2):
            digest = secrets.token_bytes(32)
            signature = parse_signature(sign_digest(key, digest))
            assert recover_address(digest, signature) == address_of(key)
    cached = signatures._address_of_public_key.cache_info()
    assert cached.hits > 0
    assert cached.currsize <= signatures.ADDRESS_CACHE_SIZE
    for key in keys[:3]:
        assert address_of(key) == Account.from_key(key).address.lower()
