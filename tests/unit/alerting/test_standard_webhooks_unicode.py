"""Webhook bodies and secrets over all of Unicode: signed bytes are the bytes sent and verified.

Model names, feature names and values come from users' events and configs, so a body may hold
astral-plane characters, combining marks, NUL, line separators, a BOM. The body must stay the
UTF-8 JSON of exactly those strings, and its signature must verify with the reference
implementation (the ``standardwebhooks`` package) and with a hand HMAC-SHA256.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from monitor.alerting.standard_webhooks import build_body, decode_secret, sign, signed_headers

# Every code point but lone surrogates (not encodable as UTF-8, so no JSON text holds one),
# with the awkward ones drawn often.
AWKWARD = ["\x00", "e\u0301", "\U0001d518\U0001d52b", "\U0010ffff", "\u2028", "\ufeff", '"\\']
texts = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=24),
    st.lists(st.sampled_from(AWKWARD), min_size=1, max_size=4).map("".join),
)
# Secrets: Standard Webhooks' whsec_<base64> of any bytes, or any text used as its UTF-8.
secrets = st.one_of(
    st.binary(min_size=1, max_size=48).map(lambda b: "whsec_" + base64.b64encode(b).decode()),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=24).filter(
        lambda s: not s.startswith("whsec_")
    ),
)


def payload(model: str, feature: str, note: str) -> dict[str, Any]:
    return {
        "model": model,
        "version": note,
        "reasons": [{"metric": "feature_psi", "feature": feature, "value": 0.31}],
        "unseen_categories": {feature: [[note, 3]]},
    }


def hand_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, msg_id.encode() + b"." + str(timestamp).encode() + b"." + body, "sha256")
    return "v1," + base64.b64encode(mac.digest()).decode()


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(model=texts, feature=texts, note=texts, secret=secrets, other=secrets)
def test_any_unicode_body_is_signed_as_sent_and_verifies(
    model: str, feature: str, note: str, secret: str, other: str
) -> None:
    now = int(time.time())  # the reference verifier allows 5 minutes of skew
    data = payload(model, feature, note)
    body = build_body("model.degraded", data, now)
    # The exact strings, as UTF-8 JSON (no lossy escaping or replacement).
    assert orjson.loads(body)["data"] == data
    assert body.decode("utf-8").encode("utf-8") == body

    keys = [decode_secret(secret), decode_secret(other)]  # a rotation: both sign
    headers = signed_headers(keys, "mm_01", now, body)
    signatures = headers["webhook-signature"].split(" ")
    assert signatures == [hand_signature(k, "mm_01", now, body) for k in keys]
    assert sign(keys[0], "mm_01", now, body) == signatures[0]
    for key in keys:  # bytes: the reference would base64-decode a non-whsec text secret
        assert Webhook(key).verify(body, headers)["data"] == data
    if secret.startswith("whsec_"):
        assert Webhook(secret).verify(body, headers)["data"] == data

    # One more character anywhere in a string changes what must verify.
    tampered = build_body("model.degraded", payload(model, feature, note + "\x00"), now)
    with pytest.raises(WebhookVerificationError):
        Webhook(keys[0]).verify(tampered, headers)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(secret=st.text(st.characters(codec="utf-8"), min_size=1, max_size=24))
def test_a_plain_text_secret_is_its_utf8_bytes(secret: str) -> None:
    key = secret.encode("utf-8")
    if secret.startswith("whsec_"):
        return
    assert decode_secret(secret) == key
    body = b'{"type":"model.test"}'
    want = base64.b64encode(hmac.new(key, b"id.1." + body, hashlib.sha256).digest()).decode()
    assert sign(decode_secret(secret), "id", 1, body) == "v1," + want
