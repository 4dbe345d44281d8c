"""Device signatures: EIP-191 personal-message signatures over 32-byte event hash digests."""

from __future__ import annotations

import functools
import re

import coincurve
import sha3
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from epcis.rejects import EventRejected, RejectCode

_EIP191_PREFIX = b"\x19Ethereum Signed Message:\n32"
_SIG_HEX = re.compile(r"^0x[0-9a-fA-F]{130}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
# Public keys whose address is remembered: a device signs every event with the same key, so
# the second Keccak of each recovery becomes a lookup; least recently used ones go first.
ADDRESS_CACHE_SIZE = 4096


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 (not NIST SHA3-256): tracefin's one, for signatures, contract code
    and pledge keys. safe-pysha3 computes it in 0.6 µs where eth_hash.auto (pycryptodome, by
    cffi) took 4.2, and every signed event needs one."""
    digest: bytes = sha3.keccak_256(data).digest()
    return digest


def personal_message_hash(digest: bytes) -> bytes:
    """The hash eth-account signs for `encode_defunct(primitive=digest)` (EIP-191 version 0x45)."""
    return keccak256(_EIP191_PREFIX + digest)


def parse_signature(value: object) -> bytes:
    """A 65-byte r||s||v signature from its 0x-hex form, or EventRejected(signature_malformed)."""
    if not isinstance(value, str) or not _SIG_HEX.match(value):
        raise EventRejected(
            RejectCode.SIGNATURE_MALFORMED, "sig must be a 0x-prefixed 65-byte hex string"
        )
    raw = bytes.fromhex(value[2:])
    if raw[64] not in (0, 1, 27, 28):
        raise EventRejected(RejectCode.SIGNATURE_MALFORMED, f"sig has invalid v={raw[64]}")
    return raw


def recover_address(digest: bytes, signature: bytes) -> str:
    """The lower-case 0x address whose key produced `signature` over `digest` (EIP-191).

    The three libsecp256k1 calls `coincurve.PublicKey.from_signature_and_message` and
    `.format` make, without the PublicKey between them: about 2 µs less of the ~36 µs a
    recovery costs, and every signed event has one (tests/unit/test_signatures.py compares
    both ways on valid, high-s, out-of-range and zero signatures).
    """
    if len(signature) != 65:  # libsecp256k1 reads 64 bytes wherever they end
        raise EventRejected(RejectCode.SIGNATURE_MALFORMED, "sig must be 65 bytes")
    recovery_id = signature[64] - 27 if signature[64] >= 27 else signature[64]
    if not 0 <= recovery_id <= 3:  # libsecp256k1 aborts the process on any other
        raise EventRejected(RejectCode.SIGNATURE_MALFORMED, f"sig has invalid v={signature[64]}")
    context = GLOBAL_CONTEXT.ctx
    recoverable = ffi.new("secp256k1_ecdsa_recoverable_signature *")
    public_key = ffi.new("secp256k1_pubkey *")
    if not (
        lib.secp256k1_ecdsa_recoverable_signature_parse_compact(
            context, recoverable, signature[:64], recovery_id
        )
        and lib.secp256k1_ecdsa_recover(
            context, public_key, recoverable, personal_message_hash(digest)
        )
    ):
        raise EventRejected(RejectCode.SIGNATURE_MALFORMED, "sig does not recover a key")
    serialized = ffi.new("unsigned char[65]")
    length = ffi.new("size_t *", 65)
    lib.secp256k1_ec_pubkey_serialize(
        context, serialized, length, public_key, lib.SECP256K1_EC_UNCOMPRESSED
    )
    return _address_of_public_key(bytes(ffi.buffer(serialized, 65)))


@functools.lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def _address_of_public_key(uncompressed: bytes) -> str:
    """The lower-case 0x address of a 65-byte uncompressed secp256k1 public key."""
    return "0x" + keccak256(uncompressed[1:])[-20:].hex()


def sign_digest(private_key: bytes, digest: bytes) -> str:
    """Sign like a device does; the 0x-hex result is what `sig` carries in the envelope."""
    signature = coincurve.PrivateKey(private_key).sign_recoverable(
        personal_message_hash(digest), hasher=None
    )
    return "0x" + signature[:64].hex() + f"{signature[64] + 27:02x}"


def address_of(private_key: bytes) -> str:
    """The lower-case 0x address of a secp256k1 private key."""
    return _address_of_public_key(
        coincurve.PrivateKey(private_key).public_key.format(compressed=False)
    )


def normalise_address(value: str) -> str:
    """Lower-case 0x form of an Ethereum address; ValueError if it is not one."""
    if not _ADDRESS.match(value):
        raise ValueError(f"not a 0x-prefixed 20-byte hex address: {value!r}")
    return value.lower()
