"""Device signatures interoperate with eth-account, the library devices are told to sign with."""

from __future__ import annotations

import secrets

import coincurve
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_hash.auto import keccak

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


# The order of secp256k1's group: r and s must lie in [1, N).
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _coincurve_recovery(digest: bytes, signature: bytes) -> str | None:
    """What coincurve's own PublicKey path recovers (None where it refuses)."""
    recovery_id = signature[64] - 27 if signature[64] >= 27 else signature[64]
    try:
        public_key = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([recovery_id]),
            signatures.personal_message_hash(digest),
            hasher=None,
        )
    except Exception:  # coincurve raises bare Exception for unrecoverable points
        return None
    return "0x" + keccak(public_key.format(compressed=False)[1:])[-20:].hex()


def _ours(digest: bytes, signature: bytes) -> str | RejectCode:
    try:
        return recover_address(digest, signature)
    except EventRejected as exc:
        return exc.code


def test_recovery_answers_as_coincurve_s_public_key_does() -> None:
    cases = 0
    for _ in range(100):
        key = secrets.token_bytes(32)
        digest = secrets.token_bytes(32)
        signature = parse_signature(sign_digest(key, digest))
        r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
        variants = [
            signature,
            r + (_N - s).to_bytes(32, "big") + bytes([55 - v]),  # the high-s twin
            r + signature[32:64] + bytes([55 - v]),  # the other recovery id
            bytes(32) + signature[32:],  # r = 0
            r + bytes(32) + bytes([v]),  # s = 0
            _N.to_bytes(32, "big") + signature[32:],  # r = N, out of range
            r + (_N + 1).to_bytes(32, "big")[-32:] + bytes([v]),  # s past N
            b"\xff" * 64 + bytes([v]),
            *(signature[:64] + bytes([other]) for other in (2, 3, 4, 5, 29, 30, 31, 255)),
        ]
        for variant in variants:
            expected = _coincurve_recovery(digest, variant)
            assert _ours(digest, variant) == (expected or RejectCode.SIGNATURE_MALFORMED)
            cases += expected is not None
        assert _ours(digest, signature) == address_of(key)
    assert cases >= 200  # valid ones, not only refusals, were compared


@pytest.mark.parametrize("signature", [bytes(64), bytes(66), b"\x01" * 64 + bytes([31])])
def test_recovery_refuses_what_libsecp256k1_would_abort_on(signature: bytes) -> None:
    """Called past parse_signature, a wrong length or recovery id is refused, not handed to
    libsecp256k1, which aborts the process on a recovery id outside 0-3."""
    with pytest.raises(EventRejected) as info:
        recover_address(b"\x00" * 32, signature)
    assert info.value.code is RejectCode.SIGNATURE_MALFORMED


def test_keccak256_is_ethereum_s_keccak_as_eth_hash_computes_it() -> None:
    assert signatures.keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    for size in (1, 31, 32, 60, 135, 136, 137, 1000):
        data = secrets.token_bytes(size)
        assert signatures.keccak256(data) == keccak(data)
