"""``credo token``: create bearer tokens for principals."""

from __future__ import annotations

from typing import Annotated

import typer

from credo.access.services import AccessError, create_token
from credo.cli.common import JsonOpt, console, fail, open_runtime, print_json
from credo.ids import IdentifierError, parse_subject_ref
from credo.ledger.subjects import subject_number
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
