"""Signed tree heads as C2SP checkpoints (signed notes, Ed25519).

Formats: https://c2sp.org/tlog-checkpoint and https://c2sp.org/signed-note,
the same as the Go checksum database, Sigstore and the transparency-dev
witnesses use, so their tools can read and witness credo's log.

A checkpoint is a note whose text is three lines, then a blank line, then
one signature line per key::

    credo.example/log
    5
    Tju7H3tHjc/nH7YxYxUZo7yhLJrvyhYSv85ME6hiZNQ=

    — credo.example/log VgCx4SHz7F1VRda9W0kC7mx1f0F0XLshtn43vaYA9K1wtDPk4J+cSU3c...

(signature shortened here; ``docs/merkle.md`` has the whole example)

* line 1, the *origin*: names the log;
* line 2, the tree size in decimal (no leading zeros);
* line 3, the root hash (RFC 9162), standard base64;
* each signature line: an em dash (U+2014), a space, the key name, a space,
  and base64 of the 4-byte key ID followed by the 64-byte Ed25519 signature
  of the note text (the lines above the blank line, final newline included).

The key ID is ``SHA-256(key name || 0x0A || 0x01 || public key)[:4]``; a
verifier is configured with the *verifier key* string
``<name>+<key ID, 8 hex digits>+<base64(0x01 || public key)>``.

>>> signer = Signer.from_seed("credo.example/log", bytes(32))
>>> note = signer.sign_checkpoint("credo.example/log", 5, bytes(32))
>>> verify_checkpoint(note, signer.verifier_key()).size
5
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "ALG_ED25519",
    "Checkpoint",
    "CheckpointError",
    "Note",
    "NoteSignature",
    "Signer",
    "Verifier",
    "checkpoint_body",
    "key_id",
    "load_or_create_signing_key",
    "parse_checkpoint",
    "parse_note",
    "verify_checkpoint",
    "verify_note",
]

#: Signature type byte of Ed25519 in the signed-note registry.
ALG_ED25519 = 0x01

_SIG_PREFIX = "\u2014 "  # em dash, space
_ROOT_SIZE = 32
_ED25519_SIG_SIZE = 64
# The Go reference (golang.org/x/mod/sumdb/note) refuses more than 100
# signatures so a hostile note cannot make a verifier spin; so do we.
_MAX_SIGNATURES = 100
_MAX_TREE_SIZE = 2**64 - 1  # a uint64 in every other implementation
_DECIMAL = re.compile(r"0|[1-9][0-9]*", re.ASCII)
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class CheckpointError(ValueError):
    """A note or checkpoint is malformed, or its signature does not verify."""


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key ID and the signature proper."""

    name: str
    key_id: int
    signature: bytes


@dataclass(frozen=True)
class Note:
    """A parsed signed note: its text (final newline included) and signatures."""

    text: str
    signatures: tuple[NoteSignature, ...]


@dataclass(frozen=True)
class Checkpoint:
    """A parsed checkpoint: what the log claims, and who signed it."""

    origin: str
    size: int
    root: bytes
    signatures: tuple[NoteSignature, ...] = ()
    extensions: tuple[str, ...] = ()

    @property
    def body(self) -> str:
        """The signed note text."""
        return checkpoint_body(self.origin, self.size, self.root, self.extensions)


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


def _b64decode(text: str) -> bytes:
    # validate=True refuses characters outside the alphabet (b64decode would
    # silently drop them otherwise).
    return base64.b64decode(text.encode("ascii"), validate=True)


def key_id(name: str, public_key: bytes) -> int:
    """Signed-note key ID of an Ed25519 key: the first 4 bytes, big-endian,
    of SHA-256(name || 0x0A || 0x01 || public key)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def checkpoint_body(origin: str, size: int, root: bytes, extensions: tuple[str, ...] = ()) -> str:
    """The note text of a checkpoint; refuses what a parser would refuse."""
    if not origin or "\n" in origin or _CONTROL.search(origin):
        raise ValueError(f"origin must be one non-empty line without control characters, got {origin!r}")
    if type(size) is not int or not 0 <= size <= _MAX_TREE_SIZE:
        raise ValueError(f"tree size must be an integer in [0, 2**64), got {size!r}")
    if not isinstance(root, bytes) or len(root) != _ROOT_SIZE:
        raise ValueError("root hash must be 32 bytes")
    for line in extensions:
        if not line or "\n" in line or _CONTROL.search(line):
            raise ValueError(f"extension lines must be non-empty single lines, got {line!r}")
    lines = [origin, str(size), base64.b64encode(root).decode(), *extensions]
    return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class Verifier:
    """A verifier key: who may sign, and the public key to check them by."""

    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def parse(cls, verifier_key: str) -> Verifier:
        """Parse ``<name>+<hex key ID>+<base64(0x01 || public key)>``."""

        def bad(why: str) -> CheckpointError:
            return CheckpointError(f"malformed verifier key {verifier_key!r}: {why}")

        name, _, rest = verifier_key.partition("+")
        id_hex, _, key_b64 = rest.partition("+")
        if not _valid_name(name):
            raise bad("the key name must be non-empty, without spaces or '+'")
        if not _KEY_ID_HEX.fullmatch(id_hex):
            raise bad("the key ID must be 8 hexadecimal digits")
        try:
            key = _b64decode(key_b64)
        except (binascii.Error, UnicodeEncodeError):
            raise bad("the key is not base64") from None
        if not key:
            raise bad("the public key is missing")
        if key[0] != ALG_ED25519:
            raise bad("only Ed25519 keys (type 0x01) are supported")
        if len(key) != 1 + 32:
            raise bad("an Ed25519 public key is 32 bytes")
        public_key = key[1:]
        if key_id(name, public_key) != int(id_hex, 16):
            raise bad("the key ID does not match the name and key")
        return cls(name, int(id_hex, 16), public_key)

    def verifier_key(self) -> str:
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def verify(self, text: str, signature: bytes) -> bool:
        if len(signature) != _ED25519_SIG_SIZE:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text.encode())
        except InvalidSignature:
            return False
        return True


class Signer:
    """Signs notes and checkpoints with one named Ed25519 key."""

    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not _valid_name(name):
            raise ValueError(f"key name must be non-empty, without spaces or '+', got {name!r}")
        self.name = name
        self._key = private_key
        self.public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id(name, self.public_key)

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        """A signer from a 32-byte Ed25519 seed (RFC 8032 private key)."""
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    def verifier(self) -> Verifier:
        return Verifier(self.name, self.key_id, self.public_key)

    def verifier_key(self) -> str:
        """The key string verifiers are configured with (publish this)."""
        return self.verifier().verifier_key()

    def sign_note(self, text: str) -> str:
        """Return ``text``, a blank line and this key's signature line."""
        if not text.endswith("\n") or _CONTROL.search(text):
            raise ValueError("note text must end with a newline and hold no control characters but newlines")
        signature = self._key.sign(text.encode())
        blob = base64.b64encode(self.key_id.to_bytes(4, "big") + signature).decode()
        return f"{text}\n{_SIG_PREFIX}{self.name} {blob}\n"

    def sign_checkpoint(self, origin: str, size: int, root: bytes) -> str:
        """A signed checkpoint of the tree of ``size`` leaves with root ``root``."""
        return self.sign_note(checkpoint_body(origin, size, root))

    def __repr__(self) -> str:
        return f"Signer({self.verifier_key()!r})"


def _create_key_file(path: Path) -> None:
    # Written under a temporary name and hard-linked into place: the link
    # fails if another process created the key first, and nobody ever reads a
    # half-written key.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, 0o600)  # the umask may only remove bits; make it exact
        file.write(pem)
        file.flush()
        os.fsync(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process won the race; use its key
    finally:
        tmp.unlink()
    # A key lost in a crash would silently be replaced by a new one that no
    # verifier knows: make the new name durable before signing anything.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_private_key(path: Path) -> Ed25519PrivateKey:
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not an unencrypted PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path}: holds a {type(key).__name__}, not an Ed25519 key")
        return key
    if len(data) == 32:
        return Ed25519PrivateKey.from_private_bytes(data)
    raise ValueError(f"{path}: neither a PEM Ed25519 private key nor a 32-byte raw seed")


def load_or_create_signing_key(path: Path, name: str) -> Signer:
    """The log's signer: the Ed25519 key at ``path`` (PEM PKCS#8, or a raw
    32-byte seed), created with mode 0600 on first use.

    ``name`` is the key name in signature lines and verifier keys; C2SP
    recommends the log's origin.
    """
    path = Path(path)
    if not path.exists():
        _create_key_file(path)
    return Signer(name, _read_private_key(path))


def parse_note(text: str | bytes) -> Note:
    """Split a signed note into text and signature lines (nothing verified).

    Raises :class:`CheckpointError` naming the offending line.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError(f"note is not valid UTF-8 (byte {exc.start})") from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CheckpointError(f"note is not valid UTF-8 (character {exc.start})") from None
    control = _CONTROL.search(text)
    if control:
        where = text.count("\n", 0, control.start()) + 1
        raise CheckpointError(f"line {where}: control character U+{ord(control.group()):04X}")
    split = text.rfind("\n\n")
    if split < 0:
        raise CheckpointError("no blank line between the note text and its signatures")
    body, block = text[: split + 1], text[split + 2 :]
    line_no = body.count("\n") + 2  # the first signature line
    if not block:
        raise CheckpointError(f"line {line_no}: no signature lines after the blank line")
    if not block.endswith("\n"):
        last = line_no + block.count("\n")
        raise CheckpointError(f"line {last}: the last signature line does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise CheckpointError(f"{len(lines)} signature lines; at most {_MAX_SIGNATURES} are accepted")
    signatures = []
    for offset, line in enumerate(lines):
        signatures.append(_parse_signature_line(line, line_no + offset))
    return Note(body, tuple(signatures))


def _parse_signature_line(line: str, line_no: int) -> NoteSignature:
    if not line.startswith(_SIG_PREFIX):
        raise CheckpointError(f"line {line_no}: a signature line starts with an em dash (U+2014) and a space")
    name, _, blob = line[len(_SIG_PREFIX) :].partition(" ")
    if not _valid_name(name):
        raise CheckpointError(f"line {line_no}: key name {name!r} is empty or holds spaces or '+'")
    try:
        raw = _b64decode(blob)
    except (binascii.Error, UnicodeEncodeError):
        raise CheckpointError(f"line {line_no}: signature of {name} is not base64") from None
    if len(raw) < 5:
        raise CheckpointError(f"line {line_no}: signature of {name} is shorter than a key ID and a byte")
    return NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def _checkpoint_from_note(note: Note) -> Checkpoint:
    lines = note.text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(
            f"line {len(lines) + 1}: a checkpoint needs origin, tree size and root hash lines"
        )
    for number, line in enumerate(lines, start=1):
        if not line:
            raise CheckpointError(f"line {number}: checkpoint lines must not be empty")
    origin, size_text, root_text, *extensions = lines
    if not _DECIMAL.fullmatch(size_text) or int(size_text) > _MAX_TREE_SIZE:
        raise CheckpointError(
            f"line 2: tree size {size_text!r} is not a decimal number without leading zeros"
        )
    try:
        root = _b64decode(root_text)
    except (binascii.Error, UnicodeEncodeError):
        raise CheckpointError(f"line 3: root hash {root_text!r} is not base64") from None
    if len(root) != _ROOT_SIZE:
        raise CheckpointError(f"line 3: root hash is {len(root)} bytes, not {_ROOT_SIZE}")
    if base64.b64encode(root).decode() != root_text:
        # Python accepts stray low bits in the last character; a root has
        # one spelling.
        raise CheckpointError(f"line 3: root hash {root_text!r} is not canonical base64")
    return Checkpoint(origin, int(size_text), root, note.signatures, tuple(extensions))


def parse_checkpoint(text: str | bytes) -> Checkpoint:
    """Parse a checkpoint without verifying any signature.

    Only for display and diagnostics: an unverified checkpoint proves
    nothing. Raises :class:`CheckpointError` naming the offending line.
    """
    return _checkpoint_from_note(parse_note(text))


def _check_signatures(note: Note, verifier_key: str) -> None:
    verifier = Verifier.parse(verifier_key)
    # Signatures by other keys (witnesses, a rotated key) are ignored, as the
    # signed-note spec requires, even when they share the name or the ID.
    ours = [s for s in note.signatures if s.name == verifier.name and s.key_id == verifier.key_id]
    label = f"{verifier.name}+{verifier.key_id:08x}"
    if not ours:
        found = ", ".join(f"{s.name}+{s.key_id:08x}" for s in note.signatures)
        raise CheckpointError(f"no signature by the known key {label}; signed only by unknown keys: {found}")
    for signature in ours:
        if not verifier.verify(note.text, signature.signature):
            raise CheckpointError(
                f"bad signature by key {label}: the note was altered or signed by another key"
            )


def verify_note(text: str | bytes, verifier_key: str) -> Note:
    """Parse a signed note and check it carries a valid signature by
    ``verifier_key``; raise :class:`CheckpointError` saying what is wrong."""
    note = parse_note(text)
    _check_signatures(note, verifier_key)
    return note


def verify_checkpoint(text: str | bytes, verifier_key: str, *, origin: str | None = None) -> Checkpoint:
    """Parse a checkpoint and verify its signature by ``verifier_key``.

    Pass ``origin`` to also refuse a correctly signed checkpoint of another
    log. Raises :class:`CheckpointError` naming what is wrong: a malformed
    line (with its number), a malformed verifier key, no signature by the
    known key, a bad signature, or an unexpected origin.
    """
    note = parse_note(text)
    checkpoint = _checkpoint_from_note(note)
    _check_signatures(note, verifier_key)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"line 1: origin {checkpoint.origin!r} is not the expected {origin!r}")
    return checkpoint
