"""What every process knows of the admin API's keys: where they live and how a token is matched.

Only a key's SHA-256 is stored (admin_api/auth.py creates and revokes keys); the channels'
HTTP chat API authenticates its callers against the same collection.
"""

import hashlib

API_KEYS = "api_keys"


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
