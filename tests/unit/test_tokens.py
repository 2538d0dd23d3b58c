"""Signed tokens for WebSocket access."""

from __future__ import annotations

from app.core.tokens import sign_token, verify_token


def test_round_trip() -> None:
    """A token verifies with the same secret and purpose and yields its payload."""
    token = sign_token("s3cret", "ws", {"channels": ["site:1"]}, ttl=60)
    payload = verify_token("s3cret", "ws", token)
    assert payload is not None
    assert ["site:1"] == payload["channels"]


def test_wrong_secret_purpose_tampering_and_expiry_are_rejected() -> None:
    """Any change of secret, purpose or payload, or an expired token, verifies to None."""
    token = sign_token("s3cret", "ws", {"channels": ["site:1"]}, ttl=60)
    body, mac = token.split(".")
    forged = sign_token("other", "ws", {"channels": ["site:2"]}, ttl=60).split(".")[0] + "." + mac
    assert verify_token("other", "ws", token) is None
    assert verify_token("s3cret", "share", token) is None
    assert verify_token("s3cret", "ws", forged) is None
    assert verify_token("s3cret", "ws", body) is None
    assert verify_token("s3cret", "ws", "garbage.%%%") is None
    assert verify_token("s3cret", "ws", sign_token("s3cret", "ws", {"channels": []}, ttl=-1)) is None
