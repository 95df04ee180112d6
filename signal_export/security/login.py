"""Clear, password-free messages for MongoDB login failures.

pymongo reports a wrong password as ``OperationFailure`` code 18 with a terse
text; an operator needs to know *which* user, auth database and server
failed, without the password ever reaching a terminal or a log. Not for:
choosing credentials (``signal_export.security.secrets``).
"""

from __future__ import annotations

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.uri_parser import parse_uri

from signal_export.errors import BridgeError

AUTH_FAILED = 18
UNAUTHORIZED = 13


class MongoLoginError(BridgeError, RuntimeError):
    """Login to MongoDB failed; the message names user, authSource and hosts, never the password."""

    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.code = code


def describe_uri(uri: str) -> str:
    """``user 'x' (authSource 'admin') at host:port`` for a URI, without its password."""
    try:
        parsed = parse_uri(uri, validate=False, warn=True)
    except Exception:  # an unparseable URI: say so without echoing it
        return "an unparseable MongoDB URI"
    hosts = ",".join(f"{h}:{p}" for h, p in parsed["nodelist"])
    user = parsed.get("username")
    if not user:
        return f"no user (unauthenticated) at {hosts}"
    options = {str(k).lower(): v for k, v in (parsed.get("options") or {}).items()}
    source = options.get("authsource") or parsed.get("database") or "admin"
    return f"user {user!r} (authSource {source!r}) at {hosts}"


def login_error(uri: str, exc: PyMongoError) -> MongoLoginError:
    """Turn a driver error raised while logging in into a :class:`MongoLoginError`."""
    code = getattr(exc, "code", None)
    who = describe_uri(uri)
    if code == AUTH_FAILED:
        text = (f"MongoDB authentication failed for {who}: wrong user name or password, or the "
                "user does not exist in that authSource (code 18)")
    elif code == UNAUTHORIZED:
        text = f"MongoDB refused {who}: not authorized (code 13)"
    else:
        text = f"MongoDB login for {who} failed: {type(exc).__name__} (code {code})"
    return MongoLoginError(text, code)


def check_login(client: MongoClient, uri: str) -> dict:
    """Authenticate now (``connectionStatus``) and return the authenticated users and roles.

    Raises :class:`MongoLoginError` (no password in the message) on failure.
    """
    try:
        status = client.admin.command("connectionStatus")
    except OperationFailure as exc:
        raise login_error(uri, exc) from None
    return status.get("authInfo", {})
