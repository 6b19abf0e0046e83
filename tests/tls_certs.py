"""Throwaway TLS certificates for the tests' servers (SMTP here, Dovecot for IMAP).

``make_certificates(folder)`` creates, with the ``openssl`` command, a private certificate
authority and one server certificate it signed, valid for ``localhost`` and ``127.0.0.1``
(subjectAltName, serverAuth). Keys are EC P-256: made in milliseconds, accepted by Python's
``ssl``, aiosmtpd and Dovecot. Nothing on the machine trusts the authority, so a client
using only the system store refuses the server ("certificate not trusted"), and one given
``ca_cert`` (the service's ``mail.ca_file``) accepts it.

Files written in ``folder``: ``ca.pem`` (the authority's certificate), ``ca.key``,
``server.pem`` (the server's certificate), ``server.key`` (its key, mode 0600: Dovecot
reads it as root when it starts; chmod it if a server reads it as another user), and
``server-chain.pem`` (the server's certificate followed by the authority's).

Usage::

    certs = make_certificates(tmp_path / "pki")
    server_ctx = certs.server_context()      # for aiosmtpd / asyncio servers
    client_ctx = certs.client_context()      # trusts exactly this authority
    # Dovecot: ssl_cert = <{certs.server_cert}  ssl_key = <{certs.server_key}

Raises ``CertificateError`` (with openssl's own message) when the command fails or is
missing: a test needing TLS then fails, it never skips.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_NAMES = ("localhost",)
DEFAULT_IPS = ("127.0.0.1",)
VALID_DAYS = 30


class CertificateError(RuntimeError):
    """Raised when the test certificates cannot be made (``openssl`` missing or failing)."""


@dataclass(frozen=True, slots=True)
class CertificateSet:
    """One throwaway authority and the server certificate it signed, as files."""

    folder: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    server_chain: Path

    def server_context(self) -> ssl.SSLContext:
        """Return a server-side context presenting the server certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.server_chain), str(self.server_key))
        return context

    def client_context(self) -> ssl.SSLContext:
        """Return a client context that trusts this authority only (and checks host names)."""
        return ssl.create_default_context(cafile=str(self.ca_cert))


def _openssl(args: Sequence[str], cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise CertificateError("the openssl command is not installed (apt-get install openssl)")
    result = subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise CertificateError(
            f"openssl {args[0]} failed: {message[-1] if message else result.returncode}"
        )


def make_certificates(
    folder: Path,
    *,
    names: Sequence[str] = DEFAULT_NAMES,
    ips: Sequence[str] = DEFAULT_IPS,
    authority_name: str = "Practice Email Service Test CA",
) -> CertificateSet:
    """Create an authority and a server certificate for ``names`` and ``ips`` in ``folder``.

    ``folder`` is created if missing (mode 0755 so a server user can reach the
    certificates). Two calls with different folders give two unrelated authorities, so a
    client trusting one refuses the other's server.
    """
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)
    certs = CertificateSet(
        folder=folder,
        ca_cert=folder / "ca.pem",
        ca_key=folder / "ca.key",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        server_chain=folder / "server-chain.pem",
    )
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl(
        [
            "req",
            "-x509",
            *curve,
            "-keyout",
            certs.ca_key.name,
            "-out",
            certs.ca_cert.name,
            "-days",
            str(VALID_DAYS),
            "-subj",
            f"/CN={authority_name}",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        folder,
    )
    subject_alt = ",".join([*(f"DNS:{n}" for n in names), *(f"IP:{ip}" for ip in ips)])
    extensions = folder / "server.ext"
    extensions.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={subject_alt}\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        [
            "req",
            "-new",
            *curve,
            "-keyout",
            certs.server_key.name,
            "-out",
            "server.csr",
            "-subj",
            f"/CN={(list(names) or list(ips))[0]}",
        ],
        folder,
    )
    _openssl(
        [
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            certs.ca_cert.name,
            "-CAkey",
            certs.ca_key.name,
            "-CAcreateserial",
            "-out",
            certs.server_cert.name,
            "-days",
            str(VALID_DAYS),
            "-extfile",
            extensions.name,
        ],
        folder,
    )
    certs.server_chain.write_bytes(certs.server_cert.read_bytes() + certs.ca_cert.read_bytes())
    os.chmod(certs.server_key, 0o600)
    os.chmod(certs.ca_key, 0o600)
    for public in (certs.ca_cert, certs.server_cert, certs.server_chain):
        os.chmod(public, 0o644)
    return certs
