"""Login tokens: forged, tampered, expired, early, revoked; refresh rotation and reuse; key rotation."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from conftest import STRONG_PASSWORD, Edge, register_and_login
from nexus_auth import api, tokens
from nexus_auth.repo import rotate_signing_key, secrets_manager_source


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def me(edge: Edge, credential: str) -> int:
    return edge.call(api.app, "GET", "/v1/users/me", credential=credential).status


def ring(aws: Any) -> tokens.KeyRing:
    return tokens.KeyRing(secrets_manager_source(aws.env_for("AuthApiFunction")["SIGNING_KEY_SECRET_ARN"]))


def test_a_login_token_reaches_the_profile(edge: Edge) -> None:
    session = register_and_login(edge, "ada@example.com")
    assert session["token_type"] == "Bearer" and session["expires_in"] == 900
    header = jwt.get_unverified_header(session["access_token"])
    assert header["alg"] == "HS256" and header["kid"]
    answer = edge.call(api.app, "GET", "/v1/users/me", credential=session["access_token"])
    assert answer.status == 200 and answer.body["user"]["email"] == "ada@example.com"
    assert answer.body["user"]["roles"] == ["trader"] and len(answer.body["user"]["accounts"]) == 1


def test_alg_none_is_refused(edge: Edge) -> None:
    # GIVEN a valid token WHEN its header says alg none and the signature is dropped
    session = register_and_login(edge, "none@example.com")
    _, payload, _ = session["access_token"].split(".")
    kid = jwt.get_unverified_header(session["access_token"])["kid"]
    forged = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{payload}."
    # THEN it is refused (401)
    assert me(edge, forged) == 401
    assert me(edge, f"{_b64({'alg': 'None', 'kid': kid})}.{payload}.") == 401


def test_another_algorithm_is_refused(edge: Edge, aws: Any) -> None:
    session = register_and_login(edge, "alg@example.com")
    claims = jwt.decode(session["access_token"], options={"verify_signature": False})
    key = ring(aws).current()
    forged = jwt.encode(claims, key.key, algorithm="HS512", headers={"kid": key.kid})
    assert me(edge, forged) == 401


def test_a_token_signed_with_another_key_is_refused(edge: Edge) -> None:
    session = register_and_login(edge, "wrongkey@example.com")
    claims = jwt.decode(session["access_token"], options={"verify_signature": False})
    kid = jwt.get_unverified_header(session["access_token"])["kid"]
    forged = jwt.encode(claims, "an attacker's guess at the key, long enough", algorithm="HS256",
                        headers={"kid": kid})
    assert me(edge, forged) == 401


def test_a_tampered_payload_is_refused(edge: Edge) -> None:
    # GIVEN two users WHEN one edits the subject of their token to the other's user id
    victim = register_and_login(edge, "victim@example.com")
    attacker = register_and_login(edge, "attacker@example.com")
    header, payload, signature = attacker["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = victim["user_id"]
    assert me(edge, f"{header}.{_b64(claims)}.{signature}") == 401
    # AND a token with its signature altered is refused too
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]  # a full 6-bit character
    assert me(edge, f"{header}.{payload}.{flipped}") == 401


def test_expired_and_not_yet_valid_tokens_are_refused(edge: Edge, aws: Any) -> None:
    session = register_and_login(edge, "clock@example.com")
    sid = jwt.decode(session["access_token"], options={"verify_signature": False})["sid"]
    keys = ring(aws)
    now = datetime.now(UTC)
    expired = tokens.issue_access_token(keys, session["user_id"], sid, now - timedelta(hours=1), timedelta(minutes=15))
    early = tokens.issue_access_token(keys, session["user_id"], sid, now + timedelta(hours=1), timedelta(minutes=15))
    fresh = tokens.issue_access_token(keys, session["user_id"], sid, now, timedelta(minutes=15))
    assert me(edge, expired) == 401
    assert me(edge, early) == 401
    assert me(edge, fresh) == 200


def test_a_token_missing_a_claim_or_for_another_audience_is_refused(edge: Edge, aws: Any) -> None:
    session = register_and_login(edge, "claims@example.com")
    claims = jwt.decode(session["access_token"], options={"verify_signature": False})
    key = ring(aws).current()
    for change in ({"aud": "someone-else"}, {"iss": "evil"}, {"sid": None}, {"exp": None}):
        edited = {k: v for k, v in {**claims, **change}.items() if v is not None}
        assert me(edge, jwt.encode(edited, key.key, algorithm="HS256", headers={"kid": key.kid})) == 401


def test_refresh_rotates_and_reuse_revokes_the_whole_family(edge: Edge) -> None:
    # GIVEN a session
    first = register_and_login(edge, "rotate@example.com")
    # WHEN the refresh token is used once THEN new tokens come back and both work
    second = edge.call(api.app, "POST", "/v1/auth/refresh", public=True,
                       body={"refresh_token": first["refresh_token"]})
    assert second.status == 200 and second.body["refresh_token"] != first["refresh_token"]
    assert me(edge, second.body["access_token"]) == 200
    # WHEN the old refresh token is presented again (stolen and replayed)
    replay = edge.call(api.app, "POST", "/v1/auth/refresh", public=True,
                       body={"refresh_token": first["refresh_token"]})
    # THEN it is refused AND the whole family is revoked: the newest tokens stop working too
    assert replay.status == 401
    edge.pass_authorizer_bound()
    assert me(edge, second.body["access_token"]) == 401
    assert me(edge, first["access_token"]) == 401
    latest = edge.call(api.app, "POST", "/v1/auth/refresh", public=True,
                       body={"refresh_token": second.body["refresh_token"]})
    assert latest.status == 401
    kinds = edge.audit_kinds()
    assert "token_refreshed" in kinds and "refresh_reuse_detected" in kinds and "session_revoked" in kinds


@pytest.mark.parametrize("token", ["", "nxr_", "nxr_" + "a" * 22 + "." + "b" * 43, "garbage", "x" * 150])
def test_garbled_or_unknown_refresh_tokens_are_refused(edge: Edge, token: str) -> None:
    answer = edge.call(api.app, "POST", "/v1/auth/refresh", public=True, body={"refresh_token": token})
    assert answer.status in (400, 401) and "error" in answer.body


def test_logout_revokes_the_session_within_the_authorizer_bound(edge: Edge) -> None:
    session = register_and_login(edge, "bye@example.com")
    answer = edge.call(api.app, "POST", "/v1/auth/logout", credential=session["access_token"])
    assert answer.status == 200 and answer.body == {"status": "logged_out"}
    edge.pass_authorizer_bound()
    assert me(edge, session["access_token"]) == 401
    again = edge.call(api.app, "POST", "/v1/auth/refresh", public=True,
                      body={"refresh_token": session["refresh_token"]})
    assert again.status == 401


def test_rotating_the_signing_key_logs_nobody_out(edge: Edge, aws: Any) -> None:
    # GIVEN a token signed with the current key
    session = register_and_login(edge, "keyrot@example.com")
    old_kid = jwt.get_unverified_header(session["access_token"])["kid"]
    # WHEN the signing key is rotated
    new_kid = rotate_signing_key(aws.env_for("AuthApiFunction")["SIGNING_KEY_SECRET_ARN"])
    assert new_kid != old_kid
    # THEN the old token still works (verified with AWSPREVIOUS) AND new logins use the new key
    assert me(edge, session["access_token"]) == 200
    from nexus_common.settings import reset_lazy

    reset_lazy()  # a fresh container: reads the secret again
    later = edge.call(api.app, "POST", "/v1/auth/login", public=True,
                      body={"email": "keyrot@example.com", "password": STRONG_PASSWORD})
    assert jwt.get_unverified_header(later.body["access_token"])["kid"] == new_kid
    assert me(edge, later.body["access_token"]) == 200
    assert me(edge, session["access_token"]) == 200
    # AND after a second rotation the first key is gone: its tokens are refused
    rotate_signing_key(aws.env_for("AuthApiFunction")["SIGNING_KEY_SECRET_ARN"])
    reset_lazy()
    assert me(edge, session["access_token"]) == 401
    assert me(edge, later.body["access_token"]) == 200


def test_the_signing_key_is_not_in_the_template_or_the_function_environment(aws: Any) -> None:
    from pathlib import Path

    arn = aws.env_for("AuthApiFunction")["SIGNING_KEY_SECRET_ARN"]
    key = ring(aws).current().key
    assert len(key) >= 32
    root = Path(__file__).resolve().parents[3]
    for path in [root / "template.yaml", *sorted((root / "stacks").glob("*.yaml"))]:
        assert key not in path.read_text()
    for function_id in aws.platform.functions:
        assert key not in json.dumps(aws.env_for(function_id))
    assert arn.startswith("arn:aws:secretsmanager:")


def test_any_change_to_a_signed_token_is_refused() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    ring = tokens.KeyRing(lambda: ("k" * 48, None))
    token = tokens.issue_access_token(ring, "usr_1", "sid_1", datetime.now(UTC), timedelta(minutes=15))
    assert tokens.verify_access_token(ring, token).user_id == "usr_1"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # the last character of each segment may carry unused bits: change the others
    positions = [i for i, c in enumerate(token) if c != "." and i + 1 < len(token) and token[i + 1] != "."][:-1]

    @settings(max_examples=200, deadline=None)
    @given(position=st.sampled_from(positions), replacement=st.sampled_from(alphabet))
    def changed(position: int, replacement: str) -> None:
        if token[position] == replacement:
            return
        forged = token[:position] + replacement + token[position + 1:]
        with pytest.raises(tokens.InvalidToken):
            tokens.verify_access_token(ring, forged)

    changed()


def test_a_rotation_signs_new_logins_with_the_new_key_at_once(edge: Edge, aws: Any) -> None:
    # GIVEN warm functions: a login signed and verified, so both key rings are loaded
    session = register_and_login(edge, "rotnow@example.com")
    old_kid = jwt.get_unverified_header(session["access_token"])["kid"]
    assert me(edge, session["access_token"]) == 200
    # WHEN the operator rotates the signing key (no container is restarted, no cache expires)
    new_kid = rotate_signing_key(aws.env_for("AuthApiFunction")["SIGNING_KEY_SECRET_ARN"])
    # THEN the very next login is signed with the new key
    later = edge.call(api.app, "POST", "/v1/auth/login", public=True,
                      body={"email": "rotnow@example.com", "password": STRONG_PASSWORD})
    assert jwt.get_unverified_header(later.body["access_token"])["kid"] == new_kid != old_kid
    # AND the authorizer accepts it at once AND still accepts the token of the previous key
    assert me(edge, later.body["access_token"]) == 200
    assert me(edge, session["access_token"]) == 200


def test_a_key_ring_follows_its_version_marker() -> None:
    # GIVEN a source whose value and version an operator changes
    state = {"keys": ("a" * 48, None), "version": "v1"}
    ring = tokens.KeyRing(lambda: state["keys"], version=lambda: str(state["version"]))  # type: ignore[arg-type,return-value]
    first = ring.current().kid
    # WHEN the value is rotated and the marker moves
    state["keys"], state["version"] = ("b" * 48, "a" * 48), "v2"
    # THEN the next signature uses the new key, AND the previous one still verifies
    assert ring.current().kid == tokens.kid_of("b" * 48) != first
    assert ring.find(first) is not None
