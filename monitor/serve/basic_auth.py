"""HTTP basic auth against bcrypt hashes, with a bounded cache of successful checks.

bcrypt is slow on purpose (~70 ms at cost 10) and Prometheus sends the same credentials every
scrape, so a success is remembered as an HMAC of user and password under a key drawn at start:
the password itself is never kept, and a cache entry is useless outside this process. Failures
are never cached (each wrong guess costs the guesser a full bcrypt check).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping

import bcrypt

CHALLENGE = 'Basic realm="modelmon", charset="UTF-8"'
#: bcrypt reads at most 72 bytes of a password (bcrypt>=5 refuses longer ones).
_BCRYPT_MAX = 72


class BasicAuth:
    """Checks ``Authorization: Basic ...`` headers against ``user -> bcrypt hash``.

    Parameters
    ----------
    users
        The hashes, from :func:`monitor.serve.web_config.load_web_config`.
    cache_size
        Successful (user, password) pairs remembered, least recently used evicted first.
    """

    def __init__(self, users: Mapping[str, bytes], cache_size: int = 64) -> None:
        self._users = dict(users)
        self._key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        # An unknown user is checked against this, at the users' cost, so its answer takes as
        # long as a known one's and the timing tells no user names.
        rounds = max((int(h.split(b"$")[2]) for h in self._users.values()), default=10)
        self._decoy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=rounds))

    def check(self, header: str | None) -> bool:
        """True when the header carries a configured user and that user's password."""
        credentials = _parse(header)
        if credentials is None:
            return False
        user, password = credentials
        token = hmac.new(self._key, _frame(user) + password, hashlib.sha256).digest()
        with self._lock:
            # A dict lookup by an HMAC under a secret key leaks nothing a caller can use.
            if token in self._cache:
                self._cache.move_to_end(token)
                return True
        hashed = self._users.get(user.decode("utf-8", "replace"))
        if len(password) > _BCRYPT_MAX:
            return False
        ok = bcrypt.checkpw(password, hashed if hashed is not None else self._decoy)
        if not ok or hashed is None:
            return False
        with self._lock:
            self._cache[token] = None
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return True

    @property
    def cached(self) -> int:
        """Successful checks remembered (for tests and the curious)."""
        with self._lock:
            return len(self._cache)


def _frame(user: bytes) -> bytes:
    # Length-prefixed, so ("ab", "c") and ("a", "bc") never share an HMAC input.
    return len(user).to_bytes(4, "big") + user


def _parse(header: str | None) -> tuple[bytes, bytes] | None:
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user, password
