"""Encryption at rest for signing keys and TOTP secrets, and keyed hashes for SMS codes."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, MultiFernet


def _derive(secret: str, purpose: bytes) -> bytes:
    return hmac.new(secret.encode(), purpose, hashlib.sha256).digest()


class FernetSecretBox:
    """Keys are derived from the configured secret(s); the first encrypts, all decrypt.

    Listing the previous secret after the new one lets an operator change the secret without
    losing the keys and TOTP secrets already stored.
    """

    def __init__(self, secrets: list[str]) -> None:
        if not secrets:
            raise ValueError("at least one encryption secret is needed")
        self._fernet = MultiFernet(
            [Fernet(base64.urlsafe_b64encode(_derive(s, b"sonata-auth/fernet"))) for s in secrets]
        )
        self._hmac_key = _derive(secrets[0], b"sonata-auth/keyed-hash")

    def encrypt(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def decrypt(self, ciphertext: bytes) -> bytes:
        return self._fernet.decrypt(ciphertext)

    def keyed_hash(self, value: str) -> str:
        return hmac.new(self._hmac_key, value.encode(), hashlib.sha256).hexdigest()
