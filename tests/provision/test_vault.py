"""Credentials from a real OpenBao dev server (Vault's API) through hvac: token and AppRole auth,
renewal before expiry, and every failure with a message that names the path and never a secret."""

from __future__ import annotations

import time

import pytest

from control_plane.provision.vault import Vault, VaultError, split_path
from tests.cloud import OpenBao, read_policy

KEY, SECRET = "AKIAEXAMPLEKEY", "s3cr3t/value+never-logged"


@pytest.fixture(scope="module")
def bao(tmp_path_factory):
    b = OpenBao(tmp_path_factory.mktemp("bao"))
    b.put("secret/stratum/aws", key=KEY, secret=SECRET)
    b.put("secret/stratum/half", key=KEY)
    yield b
    b.stop()


def no_secret(text: str) -> None:
    assert SECRET not in text and KEY not in text


def test_token_auth_reads_key_and_secret(bao):
    v = Vault(bao.addr, token=bao.token(read_policy("secret/stratum/aws")))
    assert v.credentials("secret/stratum/aws") == (KEY, SECRET)
    assert v.credentials("/secret/data/stratum/aws") == (KEY, SECRET)  # the HTTP API form works too


def test_approle_login_reads_and_logs_in_again_after_the_max_ttl(bao):
    role_id, secret_id = bao.approle(read_policy("secret/stratum/aws"), token_ttl="3s", token_max_ttl="6s")
    v = Vault(bao.addr, role_id=role_id, secret_id=secret_id, renew_margin_s=2)
    assert v.credentials("secret/stratum/aws") == (KEY, SECRET) and v.logins == 1
    deadline = time.monotonic() + 30
    while v.logins < 2 and time.monotonic() < deadline:  # renewals until the max TTL, then a new login
        v.keep_alive()
        time.sleep(0.5)
    assert v.renewals >= 1 and v.logins >= 2, (v.renewals, v.logins)
    assert v.credentials("secret/stratum/aws") == (KEY, SECRET)


def test_a_token_is_renewed_before_it_expires(bao):
    token = bao.token(read_policy("secret/stratum/aws"), ttl="4s", renewable=True, explicit_max_ttl="1h")
    v = Vault(bao.addr, token=token, renew_margin_s=3)
    v.credentials("secret/stratum/aws")
    time.sleep(1.5)
    v.keep_alive()  # within the margin now: renewed
    assert v.renewals >= 1
    time.sleep(3)  # past the original 4 s: still valid because it was renewed
    v.keep_alive()
    assert v.credentials("secret/stratum/aws") == (KEY, SECRET)


@pytest.mark.parametrize("path, kind, text", [
    ("secret/stratum/nothing", "missing", "nothing found in Vault while reading 'secret/stratum/nothing'"),
    ("secret/stratum/other", "denied", "Vault denied reading 'secret/stratum/other'"),
    ("secret/stratum/half", "invalid", "has no 'secret' field"),
    ("stratum", "invalid", "give a KV v2 path with its mount"),
])
def test_bad_paths_say_what_is_wrong(bao, path, kind, text):
    v = Vault(bao.addr, token=bao.token(read_policy("secret/stratum/aws", "secret/stratum/nothing",
                                                    "secret/stratum/half")))
    with pytest.raises(VaultError) as e:
        v.credentials(path)
    assert e.value.kind == kind and text in str(e.value), str(e.value)
    no_secret(str(e.value))


def test_unreachable_vault_is_named(bao):
    from tests.harness import free_port

    v = Vault(f"http://127.0.0.1:{free_port()}", token="t", renew_margin_s=0)
    with pytest.raises(VaultError, match=r"Vault at http://127\.0\.0\.1:\d+ is unreachable") as e:
        v.credentials("secret/stratum/aws")
    assert e.value.kind == "unreachable"


def test_a_revoked_token_is_rejected(bao):
    token = bao.token(read_policy("secret/stratum/aws"))
    v = Vault(bao.addr, token=token)
    v.credentials("secret/stratum/aws")
    bao.root.auth.token.revoke(token)
    with pytest.raises(VaultError) as e:
        v.credentials("secret/stratum/aws")
    assert e.value.kind in ("denied", "auth")
    no_secret(str(e.value))
    assert token not in str(e.value)


def test_missing_settings_are_named():
    with pytest.raises(VaultError, match="set VAULT_ADDR"):
        Vault.from_env({})
    with pytest.raises(VaultError, match="set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID"):
        Vault.from_env({"VAULT_ADDR": "http://127.0.0.1:1"})


def test_split_path():
    assert split_path("secret/stratum/aws") == ("secret", "stratum/aws")
    assert split_path("kv/data/a/b") == ("kv", "a/b")
