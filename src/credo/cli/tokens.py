"""``credo token``: create, list and revoke bearer tokens of principals."""

from __future__ import annotations

import getpass
import os
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from credo.access.services import (
    AccessError,
    TokenInfo,
    create_token,
    find_tokens,
    resolve_token_ref,
    revoke_tokens,
)
from credo.cli.common import JsonOpt, console, err_console, fail, open_runtime, print_json
from credo.ids import IdentifierError, parse_subject_ref
from credo.ledger.subjects import subject_number
from credo.runtime import Runtime
from credo.web.auth import create_login_link

app = typer.Typer(help="Bearer tokens.", no_args_is_help=True)


@app.command("create")
def create(
    role: Annotated[str, typer.Option(help="agency, relying_party, subject, reviewer, auditor or admin")],
    agency: Annotated[str | None, typer.Option(help="Agency code (role agency).")] = None,
    relying_party: Annotated[str | None, typer.Option(help="Relying party code.")] = None,
    subject: Annotated[str | None, typer.Option(help="Subject, e.g. person:11010519491231002X.")] = None,
    jurisdiction: Annotated[str | None, typer.Option(help="Jurisdiction (role reviewer).")] = None,
    label: Annotated[str, typer.Option(help="Who this token is for.")] = "",
    link: Annotated[
        bool, typer.Option("--link", help="Also print a one-time sign-in link for the web pages (24 hours).")
    ] = False,
    base_url: Annotated[
        str | None, typer.Option(help="Where the web pages are served (default: CREDO_HOST and CREDO_PORT).")
    ] = None,
    as_json: bool = JsonOpt,
) -> None:
    """Create a token and print it once; only its hash is stored."""
    runtime = open_runtime()
    if agency is not None and runtime.catalogs.agency(agency) is None:
        fail(f"--agency: unknown agency {agency!r}")
    if jurisdiction is not None and runtime.catalogs.jurisdiction(jurisdiction) is None:
        fail(f"--jurisdiction: unknown jurisdiction {jurisdiction!r}")
    try:
        with runtime.db.begin() as conn:
            subject_id = None
            if subject is not None:
                subject_id = subject_number(conn, parse_subject_ref(subject), create=True)
            token = create_token(
                conn,
                role,
                agency=agency,
                relying_party=relying_party,
                subject_id=subject_id,
                jurisdiction=jurisdiction,
                label=label,
            )
            url = None
            if link:
                base = base_url or f"http://{runtime.settings.host}:{runtime.settings.port}"
                url = f"{base.rstrip('/')}/login/link/{create_login_link(conn, token)}"
    except (AccessError, IdentifierError) as exc:
        fail(str(exc))
    if as_json:
        print_json({"role": role, "token": token} | ({"link": url} if url else {}))
    else:
        console.print(token, soft_wrap=True, highlight=False)
        if url:
            console.print(url, soft_wrap=True, highlight=False)


def _binding(t: TokenInfo) -> str:
    return t.agency or t.relying_party or t.subject or t.jurisdiction or ""


def _table(found: list[TokenInfo]) -> Table:
    table = Table("id", "role", "bound to", "label", "hash", "created", "revoked")
    for t in found:
        revoked = "" if t.revoked_at is None else f"{t.revoked_at:%Y-%m-%d %H:%M} by {t.revoked_by}"
        table.add_row(
            str(t.id),
            t.role,
            _binding(t),
            t.label,
            f"sha256:{t.hash_prefix}",
            f"{t.created_at:%Y-%m-%d %H:%M}",
            revoked + (f" ({t.reason})" if t.reason else ""),
        )
    return table


RoleOpt = Annotated[str | None, typer.Option(help="Only tokens of this role.")]
AgencyOpt = Annotated[str | None, typer.Option(help="Only tokens acting for this agency.")]
PartyOpt = Annotated[str | None, typer.Option(help="Only tokens of this relying party.")]
SubjectOpt = Annotated[
    str | None, typer.Option(help="Only tokens of this subject, e.g. person:11010519491231002X.")
]
JurisdictionOpt = Annotated[str | None, typer.Option(help="Only reviewer tokens of this jurisdiction.")]
LabelOpt = Annotated[str | None, typer.Option(help="Only tokens with exactly this label.")]


def _find(live_only: bool, principal: dict[str, str | None]) -> tuple[list[TokenInfo], Runtime]:
    """The tokens of a principal (role, agency, relying_party, subject, jurisdiction, label)."""
    runtime = open_runtime()
    wanted: dict[str, Any] = dict(principal)
    subject = wanted.pop("subject", None)
    with runtime.db.read() as conn:
        subject_id = None
        if subject is not None:
            try:
                subject_id = subject_number(conn, parse_subject_ref(subject))
            except IdentifierError as exc:
                fail(f"--subject: {exc}")
            if subject_id is None:
                return [], runtime
        found = find_tokens(conn, subject_id=subject_id, live_only=live_only, **wanted)
    return found, runtime


@app.command("list")
def list_(
    role: RoleOpt = None,
    agency: AgencyOpt = None,
    relying_party: PartyOpt = None,
    subject: SubjectOpt = None,
    jurisdiction: JurisdictionOpt = None,
    label: LabelOpt = None,
    live: Annotated[bool, typer.Option("--live", help="Only tokens not revoked.")] = False,
    as_json: bool = JsonOpt,
) -> None:
    """Tokens, oldest first: id, role, binding, label, the start of the hash, revocation. Never the token."""
    principal = {
        "role": role,
        "agency": agency,
        "relying_party": relying_party,
        "subject": subject,
        "jurisdiction": jurisdiction,
        "label": label,
    }
    found, _ = _find(live, principal)
    if as_json:
        print_json([t.as_dict() for t in found])
    else:
        console.print(_table(found))


@app.command("revoke")
def revoke(
    ref: Annotated[
        str | None,
        typer.Argument(
            help="The token: its id, sha256:<at least 8 hex digits of its hash> as `credo token list` "
            "shows it, the token itself, or - to read the token from standard input "
            "(out of the shell history). Or name a principal with the options instead.",
            show_default=False,
        ),
    ] = None,
    role: RoleOpt = None,
    agency: AgencyOpt = None,
    relying_party: PartyOpt = None,
    subject: SubjectOpt = None,
    jurisdiction: JurisdictionOpt = None,
    label: LabelOpt = None,
    reason: Annotated[str, typer.Option(help="Why (kept with the revocation).")] = "",
    as_json: bool = JsonOpt,
) -> None:
    """Revoke a token, or every live token of a principal: the next request with it is a 401.

    Each revocation is recorded for good (when, by whom, why). Exit 1 when nothing was left to revoke.
    """
    principal = {
        "role": role,
        "agency": agency,
        "relying_party": relying_party,
        "subject": subject,
        "jurisdiction": jurisdiction,
        "label": label,
    }
    if ref is None and all(v is None for v in principal.values()):
        fail("name a token (id, sha256:HASH, the token or -) or a principal (--agency, --subject, ...)")
    if ref is not None and any(v is not None for v in principal.values()):
        fail("name either a token or a principal, not both")
    if ref is None:
        found, runtime = _find(True, principal)
    else:
        if ref == "-":
            ref = sys.stdin.readline().strip()
        runtime = open_runtime()
        try:
            with runtime.db.read() as conn:
                found = [resolve_token_ref(conn, ref)]
        except AccessError as exc:
            fail(str(exc))
    try:
        by = f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name (a container with an arbitrary uid)
        by = f"cli:uid {os.getuid()}"
    with runtime.db.begin() as conn:
        revoked = revoke_tokens(conn, [t.id for t in found], by=by, reason=reason)
    if as_json:
        print_json({"revoked": revoked, "already_revoked": [t.id for t in found if t.id not in revoked]})
    else:
        for t in found:
            state = "revoked" if t.id in revoked else "was already revoked"
            console.print(f"token {t.id} ({t.role} {_binding(t)} {t.label}) {state}".replace("  ", " "))
    if not revoked:
        if not as_json:
            err_console.print("nothing to revoke")
        raise typer.Exit(1)
