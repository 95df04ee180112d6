"""Authentication (SCRAM-SHA-256) and role-based authorization of the local dev server.

Implements the server side of SCRAM-SHA-256 as mongod speaks it (``saslStart``
/ ``saslContinue``, ``speculativeAuthenticate`` in ``hello``, ``saslSupportedMechs``),
user management commands (``createUser``, ``updateUser``, ``dropUser``,
``usersInfo``, ``grantRolesToUser``, ``revokeRolesFromUser``) and enforcement of
the built-in roles ``read``, ``readWrite``, ``dbAdmin``, ``userAdmin``, ``dbOwner``
per database plus ``readAnyDatabase``, ``readWriteAnyDatabase``,
``userAdminAnyDatabase``, ``dbAdminAnyDatabase`` and ``root`` on ``admin``.
Failures use mongod's codes: 18 AuthenticationFailed, 13 Unauthorized.
Off unless the server runs with ``--auth``. Passwords are never stored or
logged: only salted SCRAM keys. Not a full mongod privilege model (no custom
roles, no collection-level privileges).

As on mongod, granting a role needs the ``grantRole`` privilege on the database
of THAT role (``userAdmin`` on it, or ``userAdminAnyDatabase``/``root`` on
``admin``), whatever database the command runs on: ``createUser``,
``updateUser`` (``roles``), ``grantRolesToUser``; revoking needs ``revokeRole``
there. The localhost exception (creating the first user, on ``admin``, without
authenticating) holds only for loopback clients (127.0.0.0/8, ::1) and only
while no user exists, checked again inside the transaction that creates it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import bson
from pymongo.saslprep import saslprep

from devservers.mongo.errors import MongoError
from devservers.mongo.storage import Storage

log = logging.getLogger("devservers.mongo.auth")

MECHANISM = "SCRAM-SHA-256"
ITERATIONS = 15000

_NO_AUTH_NEEDED = {
    "hello", "ismaster", "ping", "buildinfo", "saslstart", "saslcontinue", "endsessions",
    "logout", "connectionstatus", "getnonce", "killallsessions",
}
_ACTIONS: dict[str, set[str]] = {
    "find": {"find"}, "getmore": {"find"}, "killcursors": {"find"}, "count": {"find"},
    "distinct": {"find"}, "aggregate": {"find"},
    "insert": {"insert"}, "update": {"update", "insert"}, "delete": {"remove"},
    "findandmodify": {"find", "update"},
    "createindexes": {"createIndex"}, "dropindexes": {"dropIndex"},
    "deleteindexes": {"dropIndex"}, "listindexes": {"listIndexes"},
    "listcollections": {"listCollections"}, "create": {"createCollection"},
    "drop": {"dropCollection"}, "dropdatabase": {"dropDatabase"}, "dbstats": {"dbStats"},
    "collstats": {"collStats"},
    "createuser": {"createUser"}, "updateuser": {"updateUser"}, "dropuser": {"dropUser"},
    "usersinfo": {"viewUser"}, "grantrolestouser": {"grantRole"},
    "revokerolesfromuser": {"revokeRole"},
}
_READ = {"find", "listIndexes", "listCollections", "dbStats", "collStats"}
_WRITE = {"insert", "update", "remove", "createIndex", "dropIndex", "dropCollection",
          "createCollection"}
_DB_ADMIN = {"listIndexes", "listCollections", "dbStats", "collStats", "createIndex",
             "dropIndex", "dropCollection", "createCollection", "dropDatabase"}
_USER_ADMIN = {"createUser", "updateUser", "dropUser", "viewUser", "grantRole", "revokeRole"}
#: Roles on ``admin`` that can administer users (a server holding one has an admin user).
ADMIN_ROLES = {("root", "admin"), ("userAdminAnyDatabase", "admin"), ("userAdmin", "admin"),
               ("dbOwner", "admin")}
DB_ROLES: dict[str, set[str]] = {
    "read": _READ,
    "readWrite": _READ | _WRITE,
    "dbAdmin": _DB_ADMIN,
    "userAdmin": _USER_ADMIN,
    "dbOwner": _READ | _WRITE | _DB_ADMIN | _USER_ADMIN,
}
ANY_DB_ROLES: dict[str, set[str]] = {
    "readAnyDatabase": _READ,
    "readWriteAnyDatabase": _READ | _WRITE,
    "dbAdminAnyDatabase": _DB_ADMIN,
    "userAdminAnyDatabase": _USER_ADMIN,
    "root": _READ | _WRITE | _DB_ADMIN | _USER_ADMIN | {"*"},
}


@dataclass
class Conversation:
    user_doc: dict
    client_first_bare: str
    server_first: str
    nonce: str
    done: bool = False


@dataclass
class ConnectionAuth:
    """Authentication state of one client connection."""

    conn_id: int
    users: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    conversation: Conversation | None = None
    #: The client's IP address (None = unknown, treated as not loopback).
    peer: str | None = None

    def roles(self) -> list[dict]:
        return [r for roles in self.users.values() for r in roles]

    @classmethod
    def of_socket(cls, conn_id: int, sock: Any) -> ConnectionAuth:
        """State of a new connection on ``sock`` (its peer address recorded)."""
        try:
            peer = sock.getpeername()
            host = peer[0] if isinstance(peer, tuple) else None
        except (OSError, AttributeError):
            host = None
        return cls(conn_id, peer=host)


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; False for anything else."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def scram_credentials(password: str, salt: bytes | None = None,
                      iterations: int = ITERATIONS) -> dict:
    """Salted SCRAM-SHA-256 keys for a password (the password itself is not kept)."""
    salt = salt or os.urandom(28)
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password).encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return {
        "iterationCount": iterations,
        "salt": base64.b64encode(salt).decode(),
        "storedKey": base64.b64encode(hashlib.sha256(client_key).digest()).decode(),
        "serverKey": base64.b64encode(
            hmac.new(salted, b"Server Key", hashlib.sha256).digest()).decode(),
    }


def _auth_failed() -> MongoError:
    return MongoError(18, "AuthenticationFailed", "Authentication failed.")


def _parse_attrs(message: str) -> dict[str, str]:
    out = {}
    for part in message.split(","):
        if len(part) >= 2 and part[1] == "=":
            out[part[0]] = part[2:]
    return out


def _payload_text(payload: Any) -> str:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload).decode("utf-8")
    if isinstance(payload, str):
        return payload
    raise _auth_failed()


def _render_cmd(cmd: dict) -> str:
    first = next(iter(cmd))
    value = cmd[first]
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    return f"{{ {first}: {shown}, ... }}"


def _not_authorized(db: str, cmd: dict) -> MongoError:
    return MongoError(13, "Unauthorized", f"not authorized on {db} to execute command "
                      f"{_render_cmd(cmd)}")


def _needs_authentication(cmd: dict) -> MongoError:
    return MongoError(13, "Unauthorized", f"Command {next(iter(cmd))} requires authentication")


class AuthManager:
    """Users, SCRAM conversations and privilege checks for one server."""

    def __init__(self, storage: Storage, enabled: bool) -> None:
        self.storage = storage
        self.enabled = enabled

    # ------------------------------------------------------------------ bootstrap
    def ensure_admin(self, user: str, password: str) -> None:
        """Create the bootstrap ``root`` user on ``admin`` unless it already exists."""
        with self.storage.transaction():
            if self.storage.get_user("admin", user) is None:
                self._put_user("admin", user, password, [{"role": "root", "db": "admin"}])
                log.info("created bootstrap admin user %s on admin", user)

    def _put_user(self, db: str, user: str, password: str, roles: list[dict],
                  user_id: Any = None, custom: Any = None) -> None:
        doc: dict[str, Any] = {
            "_id": f"{db}.{user}",
            "userId": user_id or bson.Binary(uuid.uuid4().bytes, 4),
            "user": user,
            "db": db,
            "credentials": {MECHANISM: scram_credentials(password)},
            "roles": roles,
            "mechanisms": [MECHANISM],
        }
        if custom is not None:
            doc["customData"] = custom
        self.storage.put_user(db, user, doc)

    # ------------------------------------------------------------------ handshake
    def supported_mechs(self, qualified: str) -> list[str] | None:
        db, _, user = qualified.partition(".")
        with self.storage.lock:
            return [MECHANISM] if self.storage.get_user(db, user) else None

    def speculative(self, spec: dict, state: ConnectionAuth) -> dict | None:
        try:
            return self._sasl_start(spec.get("db", "admin"), spec, state)
        except MongoError:
            return None

    # ------------------------------------------------------------------ commands
    def handle(self, lname: str, db: str, cmd: dict, state: ConnectionAuth) -> dict | None:
        """Reply for auth/user commands, or None when ``cmd`` is not one of them."""
        if lname == "saslstart":
            if not self.enabled and not self._has_users():
                raise MongoError(334, "MechanismUnavailable", "Authentication is not enabled "
                                 "on this local dev server (start it with --auth)")
            return self._sasl_start(db, cmd, state)
        if lname == "saslcontinue":
            return self._sasl_continue(cmd, state)
        if lname == "logout":
            state.users.clear()
            return {"ok": 1.0}
        if lname == "connectionstatus":
            return {"authInfo": {
                "authenticatedUsers": [{"user": u, "db": d} for d, u in state.users],
                "authenticatedUserRoles": state.roles()}, "ok": 1.0}
        if lname in ("createuser", "updateuser", "dropuser", "usersinfo", "grantrolestouser",
                     "revokerolesfromuser"):
            self.authorize(lname, db, cmd, state)
            return getattr(self, "_cmd_" + lname)(db, cmd, state)
        return None

    def _has_users(self) -> bool:
        with self.storage.lock:
            return bool(self.storage.users())

    def has_admin_user(self) -> bool:
        """True when some user can administer users on ``admin`` (root, userAdmin...)."""
        with self.storage.lock:
            users = self.storage.users()
        return any((role.get("role"), role.get("db")) in ADMIN_ROLES
                   for user in users for role in user.get("roles", []))

    def _sasl_start(self, db: str, cmd: dict, state: ConnectionAuth) -> dict:
        if cmd.get("mechanism") != MECHANISM:
            raise _auth_failed()
        message = _payload_text(cmd.get("payload"))
        if not message.startswith(("n,", "y,")):
            raise _auth_failed()
        bare = message.split(",", 2)[2]
        attrs = _parse_attrs(bare)
        user = attrs.get("n", "").replace("=2C", ",").replace("=3D", "=")
        nonce = attrs.get("r", "")
        with self.storage.lock:
            user_doc = self.storage.get_user(db, user)
        if not user_doc or MECHANISM not in user_doc.get("credentials", {}) or not nonce:
            log.info("authentication failed: unknown user on %s", db)
            raise _auth_failed()
        creds = user_doc["credentials"][MECHANISM]
        full_nonce = nonce + base64.b64encode(os.urandom(24)).decode()
        server_first = f"r={full_nonce},s={creds['salt']},i={creds['iterationCount']}"
        state.conversation = Conversation(user_doc, bare, server_first, full_nonce)
        return {"conversationId": 1, "done": False,
                "payload": bson.Binary(server_first.encode()), "ok": 1.0}

    def _sasl_continue(self, cmd: dict, state: ConnectionAuth) -> dict:
        conv = state.conversation
        if conv is None:
            raise MongoError(17, "ProtocolError", "No SASL session state found")
        if conv.done:
            state.conversation = None
            return {"conversationId": 1, "done": True, "payload": bson.Binary(b""), "ok": 1.0}
        message = _payload_text(cmd.get("payload"))
        attrs = _parse_attrs(message)
        without_proof = message.rsplit(",p=", 1)[0]
        if attrs.get("r") != conv.nonce or "p" not in attrs:
            state.conversation = None
            raise _auth_failed()
        creds = conv.user_doc["credentials"][MECHANISM]
        auth_message = f"{conv.client_first_bare},{conv.server_first},{without_proof}".encode()
        stored_key = base64.b64decode(creds["storedKey"])
        client_signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        try:
            proof = base64.b64decode(attrs["p"])
        except ValueError:
            state.conversation = None
            raise _auth_failed() from None
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=False))
        if len(proof) != len(client_signature) or not hmac.compare_digest(
            hashlib.sha256(client_key).digest(), stored_key
        ):
            state.conversation = None
            log.info("authentication failed for user %s on %s", conv.user_doc["user"],
                     conv.user_doc["db"])
            raise _auth_failed()
        server_key = base64.b64decode(creds["serverKey"])
        signature = base64.b64encode(
            hmac.new(server_key, auth_message, hashlib.sha256).digest()).decode()
        user_doc = conv.user_doc
        state.users[(user_doc["db"], user_doc["user"])] = list(user_doc.get("roles", []))
        skip_empty = bool((cmd.get("options") or {}).get("skipEmptyExchange", True))
        conv.done = True
        if skip_empty:
            state.conversation = None
        return {"conversationId": 1, "done": skip_empty,
                "payload": bson.Binary(f"v={signature}".encode()), "ok": 1.0}

    # ------------------------------------------------------------------ authorization
    def _allowed(self, actions: set[str], db: str, state: ConnectionAuth) -> bool:
        granted: set[str] = set()
        for role in state.roles():
            name, role_db = role.get("role"), role.get("db")
            if role_db == db and name in DB_ROLES:
                granted |= DB_ROLES[name]
            if role_db == "admin" and name in ANY_DB_ROLES:
                granted |= ANY_DB_ROLES[name]
        return "*" in granted or actions <= granted

    def readable_dbs(self, state: ConnectionAuth) -> set[str] | None:
        """Databases listDatabases may show (None = all)."""
        if not self.enabled:
            return None
        dbs: set[str] = set()
        for role in state.roles():
            if role.get("db") == "admin" and role.get("role") in ANY_DB_ROLES:
                return None
            dbs.add(role.get("db"))
        return dbs

    def authorize(self, lname: str, db: str, cmd: dict, state: ConnectionAuth) -> None:
        """Raise code 13 Unauthorized unless the connection may run ``cmd`` on ``db``."""
        if not self.enabled or lname in _NO_AUTH_NEEDED:
            return
        if not state.users:
            if self._localhost_exception(lname, db, state):
                return  # the first user may be created unauthenticated, from loopback only
            raise _needs_authentication(cmd)
        if lname == "listdatabases":
            return
        if lname == "usersinfo" and self._only_self(db, cmd, state):
            return
        actions = _ACTIONS.get(lname, {"*"})
        if not self._allowed(actions, db, state):
            raise _not_authorized(db, cmd)
        # mongod authorises each role granted/revoked against the database of that role.
        for role_db, action in sorted(self._role_changes(lname, db, cmd)):
            if not self._allowed({action}, role_db, state):
                log.info("refused %s of a role on %s to %s", action, role_db,
                         ", ".join(f"{u}@{d}" for d, u in state.users) or "?")
                raise _not_authorized(db, cmd)

    def _localhost_exception(self, lname: str, db: str, state: ConnectionAuth) -> bool:
        """mongod's localhost exception: createUser on admin, no user yet, loopback client."""
        if lname != "createuser" or db != "admin" or self._has_users():
            return False
        if not is_loopback(state.peer):
            log.warning("localhost exception refused: client %s is not on loopback", state.peer)
            return False
        return True

    def _role_changes(self, lname: str, db: str, cmd: dict) -> set[tuple[str, str]]:
        """(role database, action) for every role ``cmd`` grants or revokes."""
        if lname in ("createuser", "grantrolestouser") or (lname == "updateuser"
                                                           and "roles" in cmd):
            granted = self._roles(db, cmd.get("roles", []))
            changes = {(r["db"], "grantRole") for r in granted}
            user = cmd.get("updateUser")
            if lname == "updateuser" and isinstance(user, str):
                with self.storage.lock:
                    doc = self.storage.get_user(db, user)
                old = doc.get("roles", []) if doc else []
                changes |= {(r.get("db", db), "revokeRole") for r in old if r not in granted}
            return changes
        if lname == "revokerolesfromuser":
            return {(r["db"], "revokeRole") for r in self._roles(db, cmd.get("roles", []))}
        return set()

    def _only_self(self, db: str, cmd: dict, state: ConnectionAuth) -> bool:
        target = cmd.get("usersInfo")
        if isinstance(target, str):
            return (db, target) in state.users
        if isinstance(target, dict):
            return (target.get("db", db), target.get("user")) in state.users
        return False

    # ------------------------------------------------------------------ user commands
    def _roles(self, db: str, roles: Any) -> list[dict]:
        if not isinstance(roles, list):
            raise MongoError(9, "FailedToParse", "\"roles\" field must be an array")
        out = []
        for role in roles:
            if isinstance(role, str):
                role = {"role": role, "db": db}
            if not isinstance(role, dict) or "role" not in role:
                raise MongoError(2, "BadValue", f"invalid role: {role!r}")
            name, role_db = role["role"], role.get("db", db)
            known = name in DB_ROLES or (role_db == "admin" and name in ANY_DB_ROLES)
            if not known:
                raise MongoError(31, "RoleNotFound", f"Could not find role: {name}@{role_db}")
            out.append({"role": name, "db": role_db})
        return out

    def _password(self, cmd: dict) -> str:
        pwd = cmd.get("pwd")
        if not isinstance(pwd, str) or not pwd:
            raise MongoError(2, "BadValue", "Must provide a 'pwd' field for all user "
                             "documents, except those with '$external' as the user's source db")
        return pwd

    def _cmd_createuser(self, db: str, cmd: dict, state: ConnectionAuth) -> dict:
        user = cmd.get("createUser")
        if not isinstance(user, str) or not user:
            raise MongoError(2, "BadValue", "User document needs 'user' field to be non-empty")
        mechs = cmd.get("mechanisms")
        if mechs is not None and MECHANISM not in mechs:
            raise MongoError(2, "BadValue", f"Only {MECHANISM} is supported by the local dev "
                             "server")
        roles = self._roles(db, cmd.get("roles", []))
        pwd = self._password(cmd)
        with self.storage.transaction():
            if self.enabled and not state.users and self.storage.users():
                # localhost exception lost a race: a user now exists, so authenticate first
                raise _needs_authentication(cmd)
            if self.storage.get_user(db, user) is not None:
                raise MongoError(51003, "Location51003", f'User "{user}@{db}" already exists')
            self._put_user(db, user, pwd, roles, custom=cmd.get("customData"))
        return {"ok": 1.0}

    def _cmd_updateuser(self, db: str, cmd: dict, state: ConnectionAuth) -> dict:
        user = cmd.get("updateUser")
        with self.storage.transaction():
            doc = self.storage.get_user(db, user)
            if doc is None:
                raise MongoError(11, "UserNotFound", f'Could not find user "{user}" for db '
                                 f'"{db}"')
            if "roles" in cmd:
                doc["roles"] = self._roles(db, cmd["roles"])
            if "pwd" in cmd:
                doc["credentials"] = {MECHANISM: scram_credentials(self._password(cmd))}
            if "customData" in cmd:
                doc["customData"] = cmd["customData"]
            self.storage.put_user(db, user, doc)
        return {"ok": 1.0}

    def _cmd_grantrolestouser(self, db: str, cmd: dict, state: ConnectionAuth) -> dict:
        user = cmd.get("grantRolesToUser")
        with self.storage.transaction():
            doc = self.storage.get_user(db, user)
            if doc is None:
                raise MongoError(11, "UserNotFound", f'Could not find user "{user}" for db '
                                 f'"{db}"')
            for role in self._roles(db, cmd.get("roles", [])):
                if role not in doc["roles"]:
                    doc["roles"].append(role)
            self.storage.put_user(db, user, doc)
        return {"ok": 1.0}

    def _cmd_revokerolesfromuser(self, db: str, cmd: dict, state: ConnectionAuth) -> dict:
        user = cmd.get("revokeRolesFromUser")
        with self.storage.transaction():
            doc = self.storage.get_user(db, user)
            if doc is None:
                raise MongoError(11, "UserNotFound", f'Could not find user "{user}" for db '
                                 f'"{db}"')
            revoke = self._roles(db, cmd.get("roles", []))
            doc["roles"] = [r for r in doc["roles"] if r not in revoke]
            self.storage.put_user(db, user, doc)
        return {"ok": 1.0}

    def _cmd_dropuser(self, db: str, cmd: dict, state: ConnectionAuth) -> dict:
        user = cmd.get("dropUser")
        with self.storage.transaction():
            if not self.storage.delete_user(db, user):
                raise MongoError(11, "UserNotFound", f"User '{user}@{db}' not found")
        return {"ok": 1.0}

    def _cmd_usersinfo(self, db: str, cmd: dict, state: ConnectionAuth) -> dict:
        target = cmd.get("usersInfo")
        with self.storage.lock:
            if target == 1 or target == 1.0:
                docs = self.storage.users(db)
            elif isinstance(target, dict) and target.get("forAllDBs"):
                docs = self.storage.users()
            else:
                wanted = target if isinstance(target, list) else [target]
                docs = []
                for item in wanted:
                    if isinstance(item, str):
                        doc = self.storage.get_user(db, item)
                    elif isinstance(item, dict):
                        doc = self.storage.get_user(item.get("db", db), item.get("user"))
                    else:
                        raise MongoError(2, "BadValue", f"invalid usersInfo argument {item!r}")
                    if doc:
                        docs.append(doc)
        users = []
        for doc in docs:
            shown = {k: v for k, v in doc.items() if k != "credentials"}
            if cmd.get("showCredentials"):
                shown["credentials"] = doc["credentials"]
            users.append(shown)
        return {"users": users, "ok": 1.0}
