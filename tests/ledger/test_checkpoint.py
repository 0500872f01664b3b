"""C2SP checkpoints / signed notes: reference vectors, round trips, tampering, key files."""

from __future__ import annotations

import base64
import doctest
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from credo.ledger import checkpoint
from credo.ledger.canonical import canonical_bytes, record_leaf_hash
from credo.ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    Signer,
    Verifier,
    checkpoint_body,
    key_id,
    load_or_create_signing_key,
    parse_checkpoint,
    parse_note,
    verify_checkpoint,
    verify_note,
)
from credo.ledger.merkle import EMPTY_ROOT, inclusion_proof, leaf_hash, root

EM = "\u2014"

# golang.org/x/mod/sumdb/note note_test.go (the reference implementation).
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
PETER_SIG = (
    f"{EM} PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    f"{EM} EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)
# The worked example of c2sp.org/signed-note (C2SP/C2SP revision d4c16da5).
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    f"{EM} example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

ORIGIN = "credo.example/log"
ROOT5 = root([leaf_hash(bytes([n])) for n in range(5)])


def go_signer() -> Signer:
    seed = base64.b64decode(GO_SIGNER_KEY.split("+", 4)[4])
    assert seed[0] == 0x01  # Ed25519
    return Signer.from_seed("PeterNeumann", seed[1:])


@pytest.fixture
def signer() -> Signer:
    return Signer.from_seed(ORIGIN, bytes(range(32)))


# --- reference vectors ------------------------------------------------------


def test_go_reference_key_and_signature_are_reproduced() -> None:
    peter = go_signer()
    assert peter.key_id == 0xC74F20A3
    assert peter.verifier_key() == PETER_VKEY
    # Ed25519 is deterministic, so the published note comes out byte for byte.
    assert peter.sign_note(GO_TEXT) == GO_TEXT + "\n" + PETER_SIG


def test_go_reference_note_verifies_and_other_keys_are_ignored() -> None:
    note = GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    opened = verify_note(note, PETER_VKEY)
    assert opened.text == GO_TEXT
    assert [(s.name, s.key_id) for s in opened.signatures] == [
        ("PeterNeumann", 0xC74F20A3),
        ("EnochRoot", 0xAF0CFE78),
    ]
    assert verify_note(note, ENOCH_VKEY).text == GO_TEXT
    with pytest.raises(CheckpointError, match="bad signature by key PeterNeumann\\+c74f20a3"):
        verify_note(note.replace("cryptography", "cryptographY"), PETER_VKEY)
    with pytest.raises(CheckpointError, match="no signature by the known key EnochRoot\\+af0cfe78"):
        verify_note(GO_TEXT + "\n" + PETER_SIG, ENOCH_VKEY)


def test_c2sp_signed_note_example_verifies() -> None:
    assert Verifier.parse(SPEC_VKEY).key_id == 0x530D903A
    assert Verifier.parse(SPEC_VKEY).verifier_key() == SPEC_VKEY
    assert verify_note(SPEC_NOTE, SPEC_VKEY).text == "This is an example message.\n"
    assert verify_note(SPEC_NOTE.encode(), SPEC_VKEY).text == "This is an example message.\n"


def test_every_mangled_verifier_key_is_refused() -> None:
    # As golang.org/x/mod/sumdb/note TestNewVerifier: every proper substring
    # and every single-character change must fail to parse.
    Verifier.parse(PETER_VKEY)
    refused = 0
    for i in range(len(PETER_VKEY) + 1):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)):
                with pytest.raises(CheckpointError, match="malformed verifier key"):
                    Verifier.parse(PETER_VKEY[i:j])
                refused += 1
    for i in range(len(PETER_VKEY)):
        mangled = PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1 :]
        with pytest.raises(CheckpointError, match="malformed verifier key"):
            Verifier.parse(mangled)
        refused += 1
    assert refused > 2000


@pytest.mark.parametrize(
    ("vkey", "why"),
    [
        ("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==", "32 bytes"),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "only Ed25519"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hexadecimal"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T!", "not base64"),
    ],
)
def test_verifier_key_errors_say_what_is_wrong(vkey: str, why: str) -> None:
    with pytest.raises(CheckpointError, match=why):
        Verifier.parse(vkey)


def test_key_id_is_the_truncated_sha256_of_name_newline_type_and_key() -> None:
    peter = Verifier.parse(PETER_VKEY)
    assert key_id("PeterNeumann", peter.public_key) == 0xC74F20A3


# --- round trip and tampering -----------------------------------------------


def test_sign_parse_verify_round_trip(signer: Signer) -> None:
    note = signer.sign_checkpoint(ORIGIN, 5, ROOT5)
    body = f"{ORIGIN}\n5\n{base64.b64encode(ROOT5).decode()}\n"
    assert note.startswith(body + "\n" + f"{EM} {ORIGIN} ")
    assert note.endswith("\n") and note.count("\n") == 5

    parsed = parse_checkpoint(note)
    assert (parsed.origin, parsed.size, parsed.root, parsed.extensions) == (ORIGIN, 5, ROOT5, ())
    assert parsed.body == body
    [signature] = parsed.signatures
    assert (signature.name, signature.key_id, len(signature.signature)) == (ORIGIN, signer.key_id, 64)
    blob = base64.b64decode(note.rsplit(" ", 1)[1])
    assert blob[:4] == signer.key_id.to_bytes(4, "big") and len(blob) == 68

    assert verify_checkpoint(note, signer.verifier_key()) == parsed
    assert verify_checkpoint(note.encode(), signer.verifier_key(), origin=ORIGIN) == parsed


def test_empty_tree_checkpoint(signer: Signer) -> None:
    note = signer.sign_checkpoint(ORIGIN, 0, EMPTY_ROOT)
    assert verify_checkpoint(note, signer.verifier_key()) == Checkpoint(
        ORIGIN, 0, EMPTY_ROOT, parse_checkpoint(note).signatures
    )


def _replace_line(note: str, number: int, text: str) -> str:
    lines = note.split("\n")
    lines[number - 1] = text
    return "\n".join(lines)


def test_tampered_checkpoints_are_refused(signer: Signer) -> None:
    note = signer.sign_checkpoint(ORIGIN, 5, ROOT5)
    vkey = signer.verifier_key()
    other_root = base64.b64encode(root([leaf_hash(b"x")])).decode()
    tampered = {
        "size": _replace_line(note, 2, "6"),
        "size shrunk": _replace_line(note, 2, "4"),
        "root": _replace_line(note, 3, other_root),
        "origin": _replace_line(note, 1, "credo.example/other-log"),
        "extension line added": note.replace("\n\n", "\nextra\n\n"),
    }
    for what, text in tampered.items():
        with pytest.raises(CheckpointError, match="bad signature"):
            verify_checkpoint(text, vkey)
        assert what  # each case named for the failure message

    prefix, blob = note.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 0x01  # a bit of the signature proper
    bad_signature = f"{prefix} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(CheckpointError, match="bad signature"):
        verify_checkpoint(bad_signature, vkey)

    raw = bytearray(base64.b64decode(blob))
    raw[0] ^= 0x01  # a bit of the key ID: now an unknown key
    unknown = f"{prefix} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(CheckpointError, match="no signature by the known key"):
        verify_checkpoint(unknown, vkey)


def test_wrong_key_is_refused(signer: Signer) -> None:
    note = signer.sign_checkpoint(ORIGIN, 5, ROOT5)
    impostor = Signer.from_seed(ORIGIN, bytes(32))  # same name, another key
    with pytest.raises(CheckpointError, match=f"no signature by the known key {ORIGIN}\\+[0-9a-f]{{8}}; "):
        verify_checkpoint(note, impostor.verifier_key())
    # A signature line claiming our name and key ID, made with another key.
    forged_text = impostor.sign_checkpoint(ORIGIN, 5, ROOT5)
    forged_sig = base64.b64decode(forged_text.rstrip("\n").rsplit(" ", 1)[1])[4:]
    blob = base64.b64encode(signer.key_id.to_bytes(4, "big") + forged_sig).decode()
    forged = checkpoint_body(ORIGIN, 5, ROOT5) + f"\n{EM} {ORIGIN} {blob}\n"
    with pytest.raises(CheckpointError, match=f"bad signature by key {ORIGIN}"):
        verify_checkpoint(forged, signer.verifier_key())


def test_witness_cosignatures_are_ignored_but_not_trusted(signer: Signer) -> None:
    witness = Signer.from_seed("witness.example/w1", bytes([7]) * 32)
    note = signer.sign_checkpoint(ORIGIN, 5, ROOT5)
    cosigned = note + witness.sign_note(parse_note(note).text).split("\n\n", 1)[1]
    assert len(verify_checkpoint(cosigned, signer.verifier_key()).signatures) == 2
    assert verify_checkpoint(cosigned, witness.verifier_key()).size == 5
    # Only the witness signed: our key's signature is required.
    witness_only = witness.sign_checkpoint(ORIGIN, 5, ROOT5)
    with pytest.raises(CheckpointError, match=r"signed only by unknown keys: witness\.example/w1\+"):
        verify_checkpoint(witness_only, signer.verifier_key())


def test_origin_is_checked_when_asked(signer: Signer) -> None:
    note = signer.sign_checkpoint("credo.example/other-log", 5, ROOT5)
    assert verify_checkpoint(note, signer.verifier_key()).origin == "credo.example/other-log"
    with pytest.raises(
        CheckpointError, match=r"line 1: origin 'credo\.example/other-log' is not the expected"
    ):
        verify_checkpoint(note, signer.verifier_key(), origin=ORIGIN)


def test_extension_lines_are_kept_and_signed(signer: Signer) -> None:
    body = checkpoint_body(ORIGIN, 5, ROOT5, ("timestamp 1700000000",))
    note = signer.sign_note(body)
    parsed = verify_checkpoint(note, signer.verifier_key())
    assert parsed.extensions == ("timestamp 1700000000",)
    assert parsed.body == body


# --- malformed input names the line -----------------------------------------


def _good_note() -> str:
    return Signer.from_seed(ORIGIN, bytes(range(32))).sign_checkpoint(ORIGIN, 5, ROOT5)


def _malformed_cases() -> list[tuple[str, str | bytes, str]]:
    note = _good_note()
    body, sig_block = note.split("\n\n")
    sig_line = sig_block.rstrip("\n")
    root_b64 = base64.b64encode(ROOT5).decode()
    non_canonical = root_b64[:-2] + chr(ord(root_b64[-2]) + 1) + "="
    return [
        ("no blank line", body + "\n" + sig_block, "no blank line"),
        ("no signatures", body + "\n\n", "line 5: no signature lines"),
        ("unterminated signature", note.rstrip("\n"), "line 5: the last signature line does not end"),
        ("CRLF", note.replace("\n", "\r\n"), "line 1: control character U\\+000D"),
        ("tab", _replace_line(note, 1, "credo\texample"), "line 1: control character U\\+0009"),
        ("hyphen not em dash", note.replace(EM, "-"), "line 5: a signature line starts with an em dash"),
        ("name with plus", note.replace(f"{EM} {ORIGIN}", f"{EM} a+b"), "line 5: key name 'a\\+b'"),
        ("signature not base64", note[:-3] + "!!\n", "line 5: signature of credo.example/log is not base64"),
        ("signature too short", f"{body}\n\n{EM} {ORIGIN} AAAA\n", "line 5: signature .* shorter"),
        ("two lines", f"{ORIGIN}\n5\n\n{sig_block}", "line 3: a checkpoint needs"),
        ("empty origin", _replace_line(note, 1, ""), "line 1: checkpoint lines must not be empty"),
        ("leading zero", _replace_line(note, 2, "05"), "line 2: tree size '05'"),
        ("negative size", _replace_line(note, 2, "-5"), "line 2: tree size '-5'"),
        ("non-ASCII digit", _replace_line(note, 2, "\u0665"), "line 2: tree size"),
        ("huge size", _replace_line(note, 2, str(2**64)), "line 2: tree size"),
        ("root not base64", _replace_line(note, 3, "not base64!"), "line 3: root hash .* is not base64"),
        ("root too short", _replace_line(note, 3, "AAAA"), "line 3: root hash is 3 bytes, not 32"),
        ("root not canonical", _replace_line(note, 3, non_canonical), "line 3: .* not canonical base64"),
        ("invalid UTF-8", note.encode().replace(b"credo", b"\xffredo", 1), "not valid UTF-8"),
        ("lone surrogate", note.replace("credo", "\ud800redo", 1), "not valid UTF-8"),
        ("101 signatures", body + "\n\n" + (sig_line + "\n") * 101, "at most 100"),
    ]


@pytest.mark.parametrize(("case", "text", "match"), _malformed_cases(), ids=lambda v: str(v)[:24])
def test_malformed_checkpoints_name_the_problem(case: str, text: str | bytes, match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        parse_checkpoint(text)
    with pytest.raises(CheckpointError, match=match):
        verify_checkpoint(text, Signer.from_seed(ORIGIN, bytes(range(32))).verifier_key())


def test_signing_refuses_what_parsing_would_refuse(signer: Signer) -> None:
    for origin in ("", "two\nlines", "tab\there"):
        with pytest.raises(ValueError, match="origin"):
            signer.sign_checkpoint(origin, 1, ROOT5)
    for size in (-1, 2**64, True, 1.0):
        with pytest.raises(ValueError, match="tree size"):
            signer.sign_checkpoint(ORIGIN, size, ROOT5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="32 bytes"):
        signer.sign_checkpoint(ORIGIN, 1, ROOT5[:31])
    with pytest.raises(ValueError, match="end with a newline"):
        signer.sign_note("no newline")
    for name in ("", "a b", "a+b"):
        with pytest.raises(ValueError, match="key name"):
            Signer.from_seed(name, bytes(32))


# --- key files --------------------------------------------------------------


def test_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "nested" / "credo-log.key"
    old_umask = os.umask(0o277)  # the file must still end up exactly 0600
    try:
        first = load_or_create_signing_key(path, ORIGIN)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert sorted(p.name for p in path.parent.iterdir()) == ["credo-log.key"]  # no temp file left
    second = load_or_create_signing_key(path, ORIGIN)
    assert second.verifier_key() == first.verifier_key()
    note = first.sign_checkpoint(ORIGIN, 5, ROOT5)
    assert verify_checkpoint(note, second.verifier_key()).root == ROOT5


def test_losing_the_creation_race_keeps_the_winners_key(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    winner = load_or_create_signing_key(path, ORIGIN)
    checkpoint._create_key_file(path)  # a second creator arriving late
    assert load_or_create_signing_key(path, ORIGIN).verifier_key() == winner.verifier_key()
    assert [p.name for p in tmp_path.iterdir()] == ["log.key"]


def test_raw_seed_key_files_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "raw.key"
    path.write_bytes(bytes(range(32)))
    assert (
        load_or_create_signing_key(path, ORIGIN).verifier_key()
        == Signer.from_seed(ORIGIN, bytes(range(32))).verifier_key()
    )


def test_unusable_key_files_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"not a key at all")
    with pytest.raises(ValueError, match="neither a PEM Ed25519 private key nor a 32-byte raw seed"):
        load_or_create_signing_key(garbage, ORIGIN)
    ec_key = tmp_path / "ec.key"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(ValueError, match="not an Ed25519 key"):
        load_or_create_signing_key(ec_key, ORIGIN)


def test_docstring_examples() -> None:
    assert doctest.testmod(checkpoint, raise_on_error=False).failed == 0


# --- docs/merkle.md stays true ----------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "merkle.md"


def _fenced(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", DOC.read_text(), re.M | re.S)


def test_documented_examples_are_real() -> None:
    [document] = _fenced("json")
    text = DOC.read_text()
    assert canonical_bytes(json.loads(document)) == document.strip().encode()
    assert f"has leaf hash `{record_leaf_hash(json.loads(document)).hex()}`" in text
    [example] = _fenced("text")
    vkey = re.search(r"^    (credo\.example/log\+[0-9a-f]{8}\+\S+)$", text, re.M)
    assert vkey is not None
    assert vkey.group(1) == Signer.from_seed(ORIGIN, bytes(32)).verifier_key()
    head = verify_checkpoint(example, vkey.group(1), origin=ORIGIN)
    # The example's root is that of the RFC 6962 reference tree of five leaves.
    assert (head.size, head.root.hex()) == (
        5,
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    )


def test_the_documented_outsider_script_verifies_credo_proofs() -> None:
    [script] = [block for block in _fenced("python") if "def record_is_in_log" in block]
    namespace: dict[str, Any] = {}
    exec(compile(script, str(DOC), "exec"), namespace)
    record_is_in_log = namespace["record_is_in_log"]

    documents: list[dict[str, Any]] = [
        {"seq": seq, "kind": "incident", "evidence": f"e{seq} \u95ef\u7ea2\u706f"} for seq in range(1, 12)
    ]
    leaves = [record_leaf_hash(d) for d in documents]
    signer = Signer.from_seed(ORIGIN, bytes(range(32)))
    vkey = signer.verifier_key()
    for size in (1, 6, 11):
        note = signer.sign_checkpoint(ORIGIN, size, root(leaves[:size]))
        for seq in range(1, size + 1):
            proof = [h.hex() for h in inclusion_proof(leaves, seq - 1, size)]
            assert record_is_in_log(documents[seq - 1], seq, proof, note, vkey)
            altered = {**documents[seq - 1], "kind": "retraction"}
            assert not record_is_in_log(altered, seq, proof, note, vkey)
    with pytest.raises(ValueError, match="no signature by this key"):
        record_is_in_log(documents[0], 1, [], note, Signer.from_seed("x", bytes(32)).verifier_key())
    forged = _replace_line(note, 2, "12")
    with pytest.raises(InvalidSignature):
        record_is_in_log(documents[0], 1, [], forged, vkey)
