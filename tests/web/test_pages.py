"""The pages through TestClient: sign-in, CSRF, URL tampering, languages, the consoles."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from web.support import ORG_NAME, Story, ask, csrf_of, sign_in

from credo.access.services import revoke_token
from credo.runtime import Runtime
from credo.settings import PROJECT_ROOT
from credo.store.tables import appeals, records, tokens
from credo.web.auth import create_login_link
from credo.web.i18n import translate
from credo.web.messages_zh import ZH


def test_signing_in_with_a_token_leads_to_the_roles_home(web: TestClient, story: Story) -> None:
    assert web.get("/me").headers["location"] == "/login?next=/me"
    assert sign_in(web, story.tokens["person"]) == "/me"
    assert web.get("/me").status_code == 200
    for role, home in [("agency", "/agency"), ("reviewer", "/review"), ("auditor", "/dashboard")]:
        web.cookies.clear()
        assert sign_in(web, story.tokens[role]) == home


def test_a_bad_token_and_a_relying_party_cannot_sign_in(web: TestClient, story: Story) -> None:
    csrf = csrf_of(web.get("/login").text)
    assert web.post("/login", data={"token": "credo_nope", "csrf": csrf}).status_code == 401
    assert web.post("/login", data={"token": story.tokens["party"], "csrf": csrf}).status_code == 403


def test_sign_in_goes_back_to_a_local_page_only(web: TestClient, story: Story) -> None:
    csrf = csrf_of(web.get("/login").text)
    res = web.post("/login", data={"token": story.tokens["person"], "csrf": csrf, "next": "//evil.example/"})
    assert res.headers["location"] == "/me"
    web.cookies.clear()
    csrf = csrf_of(web.get("/login").text)
    res = web.post("/login", data={"token": story.tokens["person"], "csrf": csrf, "next": "/me/checks"})
    assert res.headers["location"] == "/me/checks"


def test_every_form_post_without_the_csrf_token_is_refused(web: TestClient, story: Story) -> None:
    assert web.post("/login", data={"token": story.tokens["person"]}).status_code == 403
    sign_in(web, story.tokens["person"])
    page = web.get("/me/file")
    assert page.status_code == 200
    for path, data in [
        ("/me/appeals", {"record": "1", "grounds": "wrong"}),
        ("/me/rectifications", {"record": "1", "act": "fine-paid", "evidence": "x"}),
        ("/logout", {}),
        ("/lang", {"lang": "zh"}),
    ]:
        assert web.post(path, data=data).status_code == 403, path
        assert web.post(path, data={**data, "csrf": "forged"}).status_code == 403, path
    # A token from another session is no good either.
    other = TestClient(web.app, follow_redirects=False)
    foreign = csrf_of(other.get("/login").text)
    assert web.post("/logout", data={"csrf": foreign}).status_code == 403
    assert web.post("/logout", data={"csrf": csrf_of(page.text)}).status_code == 303


def test_a_subject_never_sees_another_subjects_page(web: TestClient, runtime: Runtime, story: Story) -> None:
    """URL tampering: the other subject's check, appeal, record and listing answer 404."""
    theirs = ask(web, story.tokens["party"], story.other)
    mine = ask(web, story.tokens["party"], story.person)
    assert theirs["decision"] == mine["decision"] == "denied"
    sign_in(web, story.tokens["other"])
    with runtime.db.read() as conn:
        from credo.lists.services import listing_views

        (their_listing,) = listing_views(conn, runtime.catalogs, subject_ids=[story.other_id])
    cause = their_listing.cause_seq
    csrf = csrf_of(web.get("/me/file").text)
    filed = web.post("/me/appeals", data={"csrf": csrf, "record": str(cause), "grounds": "not me"})
    assert filed.status_code == 303, filed.text
    their_appeal = filed.headers["location"]
    web.cookies.clear()
    sign_in(web, story.tokens["person"])
    assert web.get(f"/me/checks/{mine['ref']}").status_code == 200
    for path in [
        f"/me/checks/{theirs['ref']}",
        their_appeal,
        f"/me/appeals/new?record={cause}",
        f"/me/appeals/new?listing={their_listing.id}",
        f"/me/rectifications?record={cause}",
    ]:
        res = web.get(path)
        assert res.status_code == 404, path
        assert story.other not in res.text
    csrf = csrf_of(web.get("/me").text)
    res = web.post("/me/appeals", data={"csrf": csrf, "record": str(cause), "grounds": "mine now"})
    assert res.status_code == 404
    with runtime.db.read() as conn:
        assert conn.execute(
            select(appeals.c.subject_id).where(appeals.c.record_seq == cause)
        ).scalars().all() == [story.other_id]
    # Other roles' consoles are closed to a subject.
    assert web.get("/agency").status_code == 403
    assert web.get("/review").status_code == 403
    assert web.get("/dashboard").status_code == 403


def test_a_denied_check_leads_to_its_cause_and_an_appeal(web: TestClient, story: Story) -> None:
    ref = ask(web, story.tokens["party"], story.person)["ref"]
    sign_in(web, story.tokens["person"])
    checks = web.get("/me/checks").text
    assert ref in checks and "Air China" not in checks  # the party's code, its purpose, the answer
    detail = web.get(f"/me/checks/{ref}")
    assert "CN.DEFAULTER" in detail.text and "/me/appeals/new?listing=" in detail.text
    link = re.search(r'href="(/me/appeals/new\?listing=\d+)"', detail.text)
    assert link
    form = web.get(link.group(1))
    assert form.status_code == 200 and 'name="grounds"' in form.text
    listing = re.search(r'name="listing" value="(\d+)"', form.text)
    assert listing
    res = web.post(
        "/me/appeals",
        data={
            "csrf": csrf_of(form.text),
            "listing": listing.group(1),
            "grounds": "The debt was paid in 2023.",
        },
    )
    assert res.status_code == 303
    page = web.get(res.headers["location"])
    assert "The debt was paid in 2023." in page.text and "open" in page.text
    again = web.post(
        "/me/appeals",
        data={"csrf": csrf_of(form.text), "listing": listing.group(1), "grounds": "again"},
    )
    assert again.status_code == 409 and "already appealed" in again.text


def test_a_reviewer_decides_and_the_subject_is_allowed_again(web: TestClient, story: Story) -> None:
    assert ask(web, story.tokens["party"], story.person)["decision"] == "denied"
    sign_in(web, story.tokens["person"])
    detail = web.get("/me/checks")
    listing_link = re.search(r'href="/me/checks/([^"]+)"', detail.text)
    assert listing_link
    page = web.get(f"/me/checks/{listing_link.group(1)}")
    form = web.get(re.search(r'href="(/me/appeals/new\?listing=\d+)"', page.text).group(1))  # type: ignore[union-attr]
    listing = re.search(r'name="listing" value="(\d+)"', form.text).group(1)  # type: ignore[union-attr]
    res = web.post("/me/appeals", data={"csrf": csrf_of(form.text), "listing": listing, "grounds": "paid"})
    appeal_id = res.headers["location"].rsplit("/", 1)[1]
    web.cookies.clear()
    sign_in(web, story.tokens["reviewer"])
    queue = web.get("/review").text
    assert f"/review/appeals/{appeal_id}" in queue and "Days left" in queue
    case = web.get(f"/review/appeals/{appeal_id}")
    assert "paid" in case.text and story.person in case.text
    no_reasons = web.post(
        f"/review/appeals/{appeal_id}", data={"csrf": csrf_of(case.text), "outcome": "overturned"}
    )
    assert no_reasons.status_code == 422
    decided = web.post(
        f"/review/appeals/{appeal_id}",
        data={"csrf": csrf_of(case.text), "outcome": "overturned", "reasons": "Receipt of payment checked."},
    )
    assert decided.status_code == 303, decided.text
    web.app.state.index_keeper.refresh_if_changed()  # the keeper thread does this in a server
    assert ask(web, story.tokens["party"], story.person)["decision"] == "allowed"
    web.cookies.clear()
    sign_in(web, story.tokens["person"])
    mine = web.get(f"/me/appeals/{appeal_id}").text
    assert "overturned" in mine and "Receipt of payment checked." in mine


def test_the_reporting_agency_decides_a_rectification_request_on_its_page(
    web: TestClient, runtime: Runtime, story: Story
) -> None:
    with runtime.db.read() as conn:
        seq = conn.execute(
            select(records.c.seq).where(
                records.c.subject_id == story.person_id, records.c.agency == "CN-ZJ-HZ-TP"
            )
        ).scalar_one()
    sign_in(web, story.tokens["person"])
    form = web.get(f"/me/rectifications?record={seq}")
    asked = web.post(
        "/me/rectifications",
        data={"csrf": csrf_of(form.text), "record": str(seq), "act": "fine-paid", "evidence": "receipt 77"},
    )
    assert asked.status_code == 303, asked.text
    web.cookies.clear()
    # Another agency neither sees the request nor may open it; the reviewer of the jurisdiction sees it.
    sign_in(web, story.tokens["spc"])
    assert "receipt" not in web.get("/rectifications").text
    web.cookies.clear()
    sign_in(web, story.tokens["reviewer"])
    queue = web.get("/rectifications").text
    link = re.search(r'href="/rectifications/(\d+)"', queue)
    assert link, queue
    web.cookies.clear()
    sign_in(web, story.tokens["spc"])
    assert web.get(f"/rectifications/{link.group(1)}").status_code == 404
    web.cookies.clear()
    sign_in(web, story.tokens["agency"])
    case = web.get(f"/rectifications/{link.group(1)}")
    assert "receipt 77" in case.text and story.person in case.text
    no_reasons = web.post(
        f"/rectifications/{link.group(1)}", data={"csrf": csrf_of(case.text), "verdict": "approve"}
    )
    assert no_reasons.status_code == 422 and "reasons" in no_reasons.text
    decided = web.post(
        f"/rectifications/{link.group(1)}",
        data={"csrf": csrf_of(case.text), "verdict": "approve", "reasons": "Fine paid in full."},
    )
    assert decided.status_code == 303, decided.text
    assert f"/rectifications/{link.group(1)}" not in web.get("/rectifications").text
    with runtime.db.read() as conn:
        restoration = conn.execute(
            select(records.c.agency).where(records.c.kind == "restoration", records.c.target_seq == seq)
        ).scalar_one()
    assert restoration == "CN-ZJ-HZ-TP"  # filed on behalf of the reporting agency


def test_language_switch_and_english_fallback(web: TestClient) -> None:
    assert "Public lookup" in web.get("/public").text
    assert "公开查询" in web.get("/public", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    csrf = csrf_of(web.get("/public").text)
    res = web.post("/lang", data={"csrf": csrf, "lang": "zh", "next": "/public"})
    assert res.status_code == 303 and res.headers["location"] == "/public"
    page = web.get("/public").text
    assert "公开查询" in page and 'lang="zh-Hans"' in page
    assert translate("zh", "a text nobody translated") == "a text nobody translated"
    csrf = csrf_of(page)
    web.post("/lang", data={"csrf": csrf, "lang": "en", "next": "/public"})
    assert "Public lookup" in web.get("/public").text


def test_one_time_link_signs_in_once(web: TestClient, runtime: Runtime, story: Story) -> None:
    with runtime.db.begin() as conn:
        secret = create_login_link(conn, story.tokens["person"])
    confirm = web.get(f"/login/link/{secret}")
    assert confirm.status_code == 200 and "subject" in confirm.text
    assert web.get("/me").status_code == 303  # looking at the link does not use it
    res = web.post(f"/login/link/{secret}", data={"csrf": csrf_of(confirm.text)})
    assert res.status_code == 303 and res.headers["location"] == "/me"
    assert web.get("/me").status_code == 200
    web.cookies.clear()
    again = web.get(f"/login/link/{secret}")
    assert again.status_code == 410
    assert web.post(f"/login/link/{secret}", data={"csrf": csrf_of(again.text)}).status_code == 410


def test_expired_links_and_revoked_tokens_do_not_sign_in(
    web: TestClient, runtime: Runtime, story: Story
) -> None:
    with runtime.db.begin() as conn:
        old = create_login_link(conn, story.tokens["person"], now=datetime.now(UTC) - timedelta(days=2))
    assert web.get(f"/login/link/{old}").status_code == 410
    sign_in(web, story.tokens["other"])
    assert web.get("/me").status_code == 200
    with runtime.db.begin() as conn:
        from credo.access.services import hash_token

        token_id = conn.execute(
            select(tokens.c.id).where(tokens.c.token_hash == hash_token(story.tokens["other"]))
        ).scalar_one()
        assert revoke_token(conn, token_id)
    assert web.get("/me").status_code == 303  # the session ends with its token


def test_public_lookup_by_identifier_and_by_organisation_name(web: TestClient, story: Story) -> None:
    found = web.get("/public", params={"list": "CN.DEFAULTER", "q": story.person})
    assert found.status_code == 200 and "Listed" in found.text
    clear = web.get("/public", params={"list": "CN.DEFAULTER", "q": "11010519491231002X"})
    assert "Not listed" in clear.text
    by_name = web.get("/public", params={"list": "CN.DEFAULTER", "q": "示例贸易"})
    assert ORG_NAME in by_name.text and story.organisation in by_name.text
    none = web.get("/public", params={"list": "CN.DEFAULTER", "q": "Nobody Ltd"})
    assert "No listed organisation matches" in none.text
    bad = web.get("/public", params={"list": "CN.DEFAULTER", "q": "110105194912310021"})
    assert "check" in bad.text.lower()


def test_agency_upload_quarantine_fix_and_retract(web: TestClient, story: Story) -> None:
    sign_in(web, story.tokens["agency"])
    console = web.get("/agency")
    good = "agency_ref,subject,rule,occurred_on,evidence\n"
    good += f"web-1,{story.person},CN-ZJ-HZ.TRAFFIC-RED-LIGHT,2024-03-01,https://example.invalid/1\n"
    good += "web-2,110105194912310021,CN-ZJ-HZ.TRAFFIC-RED-LIGHT,2024-03-01,bad id\n"
    res = web.post(
        "/agency/upload",
        data={"csrf": csrf_of(console.text)},
        files={"file": ("week.csv", good.encode(), "text/csv")},
        headers={"X-Credo-Fragment": "1"},
    )
    assert res.status_code == 200, res.text
    assert '<strong class="n-accepted">1</strong>' in res.text
    assert '<strong class="n-rejected">1</strong>' in res.text and "subject:" in res.text
    item = re.search(r'href="/agency/quarantine/(\d+)"', res.text)
    assert item
    quarantine = web.get("/agency/quarantine")
    assert "web-2" in quarantine.text
    fix = web.get(f"/agency/quarantine/{item.group(1)}")
    assert fix.status_code == 200 and 'value="web-2"' in fix.text
    fixed = web.post(
        f"/agency/quarantine/{item.group(1)}",
        data={
            "csrf": csrf_of(fix.text),
            "agency_ref": "web-2",
            "subject": story.other,
            "rule": "CN-ZJ-HZ.TRAFFIC-RED-LIGHT",
            "occurred_on": "2024-03-01",
            "evidence": "corrected identifier",
        },
    )
    assert fixed.status_code == 200 and "Accepted as record" in fixed.text
    assert "web-2" not in web.get("/agency/quarantine").text
    assert web.get(f"/agency/quarantine/{item.group(1)}").status_code == 404
    seq = re.search(r"Accepted as record (\d+)", fixed.text).group(1)  # type: ignore[union-attr]
    console = web.get("/agency")
    retracted = web.post(
        "/agency/retract", data={"csrf": csrf_of(console.text), "seq": seq, "reason": "wrong camera"}
    )
    assert retracted.status_code == 200 and "withdraws it" in retracted.text
    # A record of another agency is refused with the reason.
    refused = web.post("/agency/retract", data={"csrf": csrf_of(console.text), "seq": "1", "reason": "x"})
    assert refused.status_code == 422


def test_an_agency_sees_only_its_own_quarantine(web: TestClient, story: Story) -> None:
    sign_in(web, story.tokens["spc"])
    console = web.get("/agency")
    res = web.post(
        "/agency/upload",
        data={"csrf": csrf_of(console.text)},
        files={"file": ("bad.jsonl", b'{"agency_ref": "x"}\n', "application/json")},
    )
    item = re.search(r'href="/agency/quarantine/(\d+)"', res.text)
    assert item
    web.cookies.clear()
    sign_in(web, story.tokens["agency"])
    assert web.get(f"/agency/quarantine/{item.group(1)}").status_code == 404


def test_the_dashboard_is_for_auditors_and_has_every_chart(web: TestClient, story: Story) -> None:
    assert web.get("/dashboard").status_code == 303
    sign_in(web, story.tokens["auditor"])
    page = web.get("/dashboard")
    assert page.status_code == 200
    for chart in ("scores-CN", "records", "listings", "appeals", "decision-time", "overturns"):
        assert f'id="fig-{chart}"' in page.text, chart
    assert "chart.js-4.5.1.umd.min.js" in page.text
    assert web.get("/static/vendor/chart.js-4.5.1.umd.min.js").status_code == 200


def test_the_subject_downloads_the_whole_file(web: TestClient, story: Story) -> None:
    sign_in(web, story.tokens["person"])
    as_json = web.get("/me/export.json")
    assert as_json.status_code == 200 and as_json.json()["subject"].endswith(story.person)
    pdf = web.get("/me/export.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    for path in (
        "/me",
        "/me/score",
        "/me/file",
        "/me/listings",
        "/me/notices",
        "/me/appeals",
        "/me/rectifications",
    ):
        res = web.get(path)
        assert res.status_code == 200, path
        assert "Content-Security-Policy" in res.headers


def _texts() -> set[str]:
    """Every literal the pages translate: _("...") in templates, t("...")/WebError(...) in views."""
    found: set[str] = set()
    templates = PROJECT_ROOT / "src" / "credo" / "web" / "templates"
    for path in templates.rglob("*.html"):
        for m in re.finditer(r'_\(\s*"((?:[^"\\]|\\.)*)"', path.read_text()):
            found.add(m.group(1))
        for m in re.finditer(r"_\(\s*'((?:[^'\\]|\\.)*)'", path.read_text()):
            found.add(m.group(1))
        for m in re.finditer(r'\("(/[^"]*)", "([^"]+)"\)', path.read_text()):
            found.add(m.group(2))
    for path in (PROJECT_ROOT / "src" / "credo" / "web").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "t")
                or (isinstance(node.func, ast.Name) and node.func.id in ("t", "WebError"))
            ):
                for arg in node.args:
                    if (
                        isinstance(arg, ast.Constant)
                        and isinstance(arg.value, str)
                        and not arg.value.isdigit()
                    ):
                        found.add(arg.value)
    return found


# Texts the pages translate from data: roles, statuses, answers, outcomes, kinds, acts, errors.
DYNAMIC = {
    *("subject", "agency", "reviewer", "auditor", "admin"),
    *("counted", "capped", "expired", "rectified", "retracted", "overturned", "suspended"),
    *("allowed", "denied", "granted", "upheld", "amended", "open", "pending"),
    *("record", "listing", "delisting", "warning", "appeal-received", "appeal-decision", "appeal-overdue"),
    *("rectification-received", "rectification-decision", "incident", "retraction", "restoration"),
    *("record {n} expires", "record {n} is rectified", "record {n} counts", "record {n} is capped"),
    *(f"outcome-help-{o}" for o in ("upheld", "overturned", "amended")),
    "Unknown or revoked token.",
    "Relying parties use the check API; there are no pages for them.",
    "Type an identifier, or at least two characters of an organisation's name.",
    "Name the file .csv, .jsonl or .parquet so its format is known.",
    "Give an organisation's Unified Social Credit Code and its name.",
    "Your agency has no record about this organisation.",
}


def test_every_text_on_the_pages_has_a_chinese_translation() -> None:
    from credo.process.rectification import ACTS

    wanted = {t for t in _texts() if not t.endswith(("-", " "))} | DYNAMIC | set(ACTS)
    missing = sorted(t for t in wanted if t not in ZH)
    assert not missing, f"add to credo/web/messages_zh.py: {missing}"


@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("person", "/me/appeals/{n}"),
        ("reviewer", "/review/appeals/{n}"),
        ("reviewer", "/rectifications/{n}"),
    ],
)
def test_a_page_for_a_number_no_row_can_have_is_not_found(
    web: TestClient, story: Story, role: str, path: str
) -> None:
    sign_in(web, story.tokens[role])
    for n in (2**63, 10**30, 0):  # past PostgreSQL's bigint: once an error 500 there
        assert web.get(path.format(n=n)).status_code in (404, 422), (path, n)
