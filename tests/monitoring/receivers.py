"""Local alert receivers for tests: an HTTP webhook sink and an aiosmtpd SMTP server
(plain, STARTTLS or implicit TLS, with a self-signed certificate for 127.0.0.1)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@contextmanager
def webhook_receiver(status: int = 200) -> Iterator[tuple[str, list[dict]]]:
    """``(url, received)``: every POSTed JSON body is appended to ``received``."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append({"path": self.path, "json": json.loads(body)})
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook/secret-token-123", received
    finally:
        server.shutdown()
        server.server_close()


class _Sink:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        #: (login, password, the session was encrypted) per AUTH attempt
        self.logins: list[tuple[str, str, bool]] = []
        #: whether each delivered message came over an encrypted session
        self.encrypted: list[bool] = []
        self.ca_file: str | None = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's naming
        self.messages.append(message_from_bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.encrypted.append(_encrypted(server, session))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            self.logins.append((auth_data.login.decode(), auth_data.password.decode(),
                                _encrypted(server, session)))
        return AuthResult(success=True)


def _encrypted(server, session) -> bool:
    """STARTTLS sets ``session.ssl``; an implicit-TLS transport carries an ssl object."""
    transport = getattr(server, "transport", None)
    return session.ssl is not None or (
        transport is not None and transport.get_extra_info("ssl_object") is not None)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """``(cert.pem, key.pem)`` for 127.0.0.1 (the cert is its own CA: pass it as ca_file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@contextmanager
def smtp_receiver(tls: Literal["starttls", "implicit"] | None = None,
                  cert_dir: Path | None = None) -> Iterator[tuple[int, _Sink]]:
    """``(port, sink)``: a local SMTP server on 127.0.0.1 collecting messages.

    ``tls="starttls"``: offers and requires STARTTLS (AUTH only after it);
    ``"implicit"``: TLS from the first byte (SMTPS). Both use a self-signed certificate
    written to ``cert_dir``; ``sink.ca_file`` is the file a client must trust.
    """
    sink = _Sink()
    with socket.socket() as probe:  # aiosmtpd's start-up check cannot use port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kwargs: dict = {"authenticator": sink.authenticate}
    if tls is not None:
        assert cert_dir is not None, "TLS needs a directory for the certificate"
        cert, key = self_signed_cert(cert_dir)
        sink.ca_file = str(cert)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        if tls == "starttls":
            kwargs |= {"tls_context": context, "require_starttls": True}
        else:
            kwargs |= {"ssl_context": context, "auth_require_tls": False}  # TLS already
    controller = Controller(sink, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port, sink
    finally:
        controller.stop()
