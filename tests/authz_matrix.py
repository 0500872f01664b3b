"""The authorization matrix, as data: role x operation x ownership -> expected status.

``ownership`` says whose object the request touches:
``own`` (the caller's own subject, agency or jurisdiction), ``other``
(another subject's, another agency's, another jurisdiction's), ``none``
(nothing owned: public or role-wide). A cell absent from ``MATRIX`` means
"this role gets ``DEFAULT[role]``" — 401 for anonymous, 403 for everyone
else — so every row says only what differs from refusal.

Reading another subject's data answers 404, not 403: it does not confirm
that the thing exists. An auditor's every write is refused (403).
"""

from __future__ import annotations

ROLES = ("anonymous", "subject", "agency", "relying_party", "reviewer", "auditor", "admin")
DEFAULT = {role: (401 if role == "anonymous" else 403) for role in ROLES}
EVERYONE = {role: 200 for role in ROLES}
SIGNED_IN = {role: 200 for role in ROLES if role != "anonymous"}

# (method, path template) -> {(role, ownership): status}
MATRIX: dict[tuple[str, str], dict[tuple[str, str], int]] = {
    ("GET", "/healthz"): {(r, "none"): 200 for r in ROLES},
    ("GET", "/livez"): {(r, "none"): 200 for r in ROLES},
    ("GET", "/api/v1/public/lists/{code}"): {(r, "none"): 200 for r in ROLES},
    ("GET", "/api/v1/audit/key"): {(r, "none"): 200 for r in ROLES},
    ("GET", "/api/v1/audit/tree-head"): {(r, "none"): s for r, s in SIGNED_IN.items()},
    ("GET", "/api/v1/audit/proof/{seq}"): {(r, "none"): s for r, s in SIGNED_IN.items()},
    ("GET", "/api/v1/audit/consistency"): {(r, "none"): s for r, s in SIGNED_IN.items()},
    ("GET", "/api/v1/audit/access"): {("auditor", "none"): 200},
    ("POST", "/api/v1/records"): {("agency", "own"): 200, ("agency", "other"): 200},
    ("GET", "/api/v1/quarantine"): {("agency", "own"): 200},
    ("GET", "/api/v1/agency/decisions"): {("agency", "own"): 200},
    ("POST", "/api/v1/checks"): {("relying_party", "own"): 200, ("relying_party", "other"): 403},
    ("GET", "/api/v1/me/checks"): {("subject", "own"): 200},
    ("GET", "/api/v1/me/checks/{ref}"): {("subject", "own"): 200, ("subject", "other"): 404},
    ("GET", "/api/v1/me/listings"): {("subject", "own"): 200},
    ("GET", "/api/v1/me/file"): {("subject", "own"): 200},
    ("GET", "/api/v1/me/export"): {("subject", "own"): 200},
    ("GET", "/api/v1/me/score"): {("subject", "own"): 200},
    ("GET", "/api/v1/me/notices"): {("subject", "own"): 200},
    ("GET", "/api/v1/me/appeals"): {("subject", "own"): 200},
    ("POST", "/api/v1/me/appeals"): {("subject", "own"): 201, ("subject", "other"): 404},
    ("GET", "/api/v1/me/rectifications"): {("subject", "own"): 200},
    ("POST", "/api/v1/me/rectifications"): {("subject", "own"): 201, ("subject", "other"): 404},
    ("GET", "/api/v1/review/queue"): {("reviewer", "own"): 200},
    ("POST", "/api/v1/review/appeals/{appeal_id}/decision"): {
        ("reviewer", "own"): 200,
        ("reviewer", "other"): 404,
        ("reviewer", "own-agency"): 403,
    },
    ("POST", "/api/v1/rectifications/{request_id}/decision"): {
        ("reviewer", "own"): 200,
        ("reviewer", "other"): 404,
        ("agency", "own"): 200,
        ("agency", "other"): 404,
    },
    ("GET", "/api/v1/stats"): {("auditor", "none"): 200, ("admin", "none"): 200, ("reviewer", "none"): 200},
    ("GET", "/api/v1/subjects/{subject}/score"): {
        ("subject", "own"): 200,
        ("subject", "other"): 404,
        ("auditor", "own"): 200,
        ("auditor", "other"): 200,
        ("reviewer", "own"): 200,
        ("reviewer", "other"): 200,
    },
}


def ownerships(op: tuple[str, str]) -> list[str]:
    """The ownership variants a row exercises (each role is tried with each)."""
    found = {o for _, o in MATRIX[op]}
    return sorted(found) if found else ["none"]


def expected(op: tuple[str, str], role: str, ownership: str) -> int:
    return MATRIX[op].get((role, ownership), DEFAULT[role])
