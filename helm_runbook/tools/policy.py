"""Operator tooling for signed policy: keygen, sign, verify and status (issue 4).

The signing seed never reaches stdout, a log or a notebook: ``keygen`` writes it to a 0600
file (or it comes from ``HELM_RUNBOOK_POLICY_KEY``) and only the public key and fingerprint are
shown.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from helm_runbook.errors import InputError, RunbookError, SecretMaterialMissing
from helm_runbook.formats.keys import KeyMaterialError, Signer, parse_seed_hex, verify_hex
from helm_runbook.formats.policy_bundle import PolicyFileError, signing_material
from helm_runbook.harness.results import Table
from helm_runbook.tools.client import Credentials, RuntimeClient

DEFAULT_MOUNT = Path("/etc/helm-ai-kernel/policy")
POLICY_KEY_ENV = "HELM_RUNBOOK_POLICY_KEY"


@dataclass(frozen=True)
class PolicyKey:
    """A policy trust key pair: only the public half is ever shown."""

    public_key: str
    fingerprint: str
    path: str

    def table(self) -> Table:
        return Table(
            "policy key",
            ["public key (HELM_POLICY_TRUST_PUBLIC_KEY)", "fingerprint", "seed file"],
            [[self.public_key, self.fingerprint, self.path]],
        )

    def __str__(self) -> str:
        return str(self.table())

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()


def keygen(out: Path) -> PolicyKey:
    """Create a policy signing seed in ``out`` (0600, refuses to overwrite) and return its public half."""
    if out.exists():
        raise RunbookError(
            f"{out} already exists", fix="choose another --out path; keys are never overwritten"
        )
    seed = os.urandom(32)
    try:
        out.parent.mkdir(
            mode=0o700, parents=True, exist_ok=True
        )  # missing folders are made, owner-only
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise InputError(f"cannot create {out}: {exc.strerror}",
                         fix="choose an --out path in a folder you can write") from exc  # fmt: skip
    with os.fdopen(fd, "w") as handle:
        handle.write(seed.hex())
    signer = Signer(SigningKey(seed), key_id="policy")
    return PolicyKey(signer.public_key_hex, signer.fingerprint, str(out))


def _refuse_wide_seed_file(path: Path) -> None:
    """A seed file others can read is a leaked key: refuse it (as ssh does a wide private key)."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise InputError(
            f"{path} is mode {mode:04o}: other users can read the policy signing seed",
            fix=f"chmod 600 {shlex.quote(str(path))} (and rotate the key if others may have read it)",
        )


def load_policy_signer(key_file: Path | None) -> Signer:
    """The policy signer from a seed file, else from ``HELM_RUNBOOK_POLICY_KEY``."""
    try:
        if key_file is not None:
            _refuse_wide_seed_file(key_file)
            return Signer(
                SigningKey(parse_seed_hex(key_file.read_text().strip(), source=str(key_file))),
                "policy",
            )
        value = os.environ.get(POLICY_KEY_ENV, "")
        if value:
            return Signer(
                SigningKey(parse_seed_hex(value.strip(), source=POLICY_KEY_ENV)), "policy"
            )
    except (OSError, KeyMaterialError) as exc:
        raise SecretMaterialMissing(
            str(exc), fix="pass --key-file from `helm-runbook policy keygen`"
        ) from exc
    raise SecretMaterialMissing(
        "no policy signing key", fix=f"pass --key-file or set {POLICY_KEY_ENV} (64 hex seed)"
    )


@dataclass(frozen=True)
class SignedPolicy:
    policy: str
    signature_path: str
    public_key: str
    fingerprint: str
    mount_dir: str

    def table(self) -> Table:
        return Table(
            "policy signature",
            ["policy", "signature file", "signed by", "as mounted under"],
            [[self.policy, self.signature_path, self.fingerprint, self.mount_dir]],
        )

    def __str__(self) -> str:
        return str(self.table())

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()


def sign_policy(policy: Path, signer: Signer, *, mount_dir: Path = DEFAULT_MOUNT) -> SignedPolicy:
    """Write ``<policy>.sig``: Ed25519 over the composite material the runtime will check."""
    try:
        material = signing_material(policy.read_bytes(), policy, mount_dir=mount_dir)
    except (OSError, PolicyFileError) as exc:
        raise RunbookError(
            f"cannot sign {policy}: {exc}",
            fix="sign the serve-policy.toml beside its reference pack",
        ) from exc
    sig_path = policy.with_name(policy.name + ".sig")
    sig_path.write_text(signer.sign_hex(material))
    return SignedPolicy(
        str(policy), str(sig_path), signer.public_key_hex, signer.fingerprint, str(mount_dir)
    )


def verify_policy(policy: Path, public_key: str, *, mount_dir: Path = DEFAULT_MOUNT) -> bool:
    """True when ``<policy>.sig`` verifies for the policy and pack as they will be mounted."""
    sig_path = policy.with_name(policy.name + ".sig")
    try:
        signature = sig_path.read_text().strip()
        material = signing_material(policy.read_bytes(), policy, mount_dir=mount_dir)
    except (OSError, PolicyFileError) as exc:
        raise RunbookError(
            f"cannot verify {policy}: {exc}",
            fix=f"write {sig_path} with `helm-runbook policy sign`",
        ) from exc
    return verify_hex(public_key.strip().lower(), material, signature)


def reconcile_status(url: str, service_key: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """Send the wake hint and return the runtime's ReconcileStatus JSON."""
    with RuntimeClient(
        url, credentials=Credentials(service_key=service_key), timeout=timeout
    ) as client:
        return client.reconcile()  # fmt: skip
