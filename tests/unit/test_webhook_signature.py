"""Webhook signatures."""

from __future__ import annotations

from services.integrations.logic import sign, verify


def test_signature_verifies_and_detects_tampering() -> None:
    """A receiver accepts the exact body within the tolerance and rejects anything else."""
    header = sign("secret-secret-16", 1_700_000_000, b'{"a":1}')
    assert verify("secret-secret-16", header, b'{"a":1}', now=1_700_000_010)
    assert not verify("secret-secret-16", header, b'{"a":2}', now=1_700_000_010)
    assert not verify("other-secret-xyz", header, b'{"a":1}', now=1_700_000_010)
    assert not verify("secret-secret-16", header, b'{"a":1}', now=1_700_001_000)
    assert not verify("secret-secret-16", "nonsense", b'{"a":1}', now=1_700_000_010)
