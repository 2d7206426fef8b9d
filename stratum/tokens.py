"""The join-token format: `stj1.<ca-sha256>.<token-id>.<secret>`.

The CA fingerprint lets a new node check the control plane it talks to before
it trusts it (as kubeadm's discovery hash does), so an operator needs only
the token and an address to enroll a device.
"""

import re
import secrets
from dataclasses import dataclass

PREFIX = "stj1"
_ID = re.compile(r"^jt-[0-9a-f]{12}$")
_FP = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class JoinTokenParts:
    ca_fingerprint: str
    token_id: str
    secret: str


def new_token_id() -> str:
    return "jt-" + secrets.token_hex(6)


def new_secret() -> str:
    return secrets.token_hex(20)


def format_join_token(ca_fingerprint: str, token_id: str, secret: str) -> str:
    return f"{PREFIX}.{ca_fingerprint}.{token_id}.{secret}"


def parse_join_token(text: str) -> JoinTokenParts:
    """Split a join token; ValueError that says what is wrong (never echoing the secret)."""
    parts = text.strip().split(".")
    if len(parts) != 4 or parts[0] != PREFIX:
        raise ValueError(f"malformed join token: expected {PREFIX}.<ca-sha256>.<token-id>.<secret>")
    _, fp, token_id, secret = parts
    if not _FP.match(fp):
        raise ValueError("malformed join token: the CA fingerprint must be 64 hex characters")
    if not _ID.match(token_id):
        raise ValueError("malformed join token: bad token id")
    if not secret:
        raise ValueError("malformed join token: empty secret")
    return JoinTokenParts(fp, token_id, secret)
