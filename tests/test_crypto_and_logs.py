from __future__ import annotations

import json
import logging

import pytest
from cryptography.fernet import Fernet, InvalidToken

from app.crypto import TokenCipher
from app.logs import JsonFormatter


def test_tokens_round_trip_and_survive_key_rotation():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    stored = TokenCipher((old,)).encrypt("shpat-secret-value")
    assert "shpat-secret-value" not in stored
    rotated = TokenCipher((new, old))
    assert rotated.decrypt(stored) == "shpat-secret-value"
    assert TokenCipher((new,)).decrypt(rotated.encrypt("x")) == "x"
    with pytest.raises(InvalidToken):
        TokenCipher((new,)).decrypt(stored)


def test_logs_are_json_and_drop_personal_fields():
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "member.created", (), None)
    record.shop_id, record.email, record.access_token = 3, "taro@example.com", "secret"
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["event"] == "member.created" and entry["shop_id"] == 3
    assert "taro@example.com" not in line and "secret" not in line
