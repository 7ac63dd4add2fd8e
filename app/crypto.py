"""Encryption at rest for every token we hold (Shopify access/refresh tokens, Smaregi app tokens)."""
from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class TokenCipher:
    """Fernet with rotation: the first key encrypts, every configured key decrypts."""

    def __init__(self, keys: tuple[str, ...]):
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise InvalidToken("stored token cannot be decrypted with TOKEN_ENCRYPTION_KEY") from None
