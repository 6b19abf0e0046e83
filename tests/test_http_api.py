"""The HTTP interface's routes, served by uvicorn on a free port over SQLite practice databases."""

from __future__ import annotations

import json

from supervisor.status_rule import NEVER_TOOLTIP, RUNNING_TOOLTIP
from tests.http_fixtures import Site


def test_status_lists_each_eligible_database_with_the_contract_keys(site: Site) -> None:
    site.check_in("Smile Dental", ok=True)
    rows = site.json("GET", "/api/status")
    assert rows == [
        {
            "name": "Bright Teeth",
            "status": "not_available",
            "tooltip": NEVER_TOOLTIP,
            "last_checkin_at": None,
        },
        {
            "name": "Smile Dental",
            "status": "running",
            "tooltip": RUNNING_TOOLTIP,
            "last_checkin_at": rows[1]["last_checkin_at"],
        },
    ]
    assert rows[1]["last_checkin_at"].endswith("Z")


def test_diagnostics_returns_the_newest_failing_checkins_lines(site: Site) -> None:
    site.check_in(
        "Bright Teeth", ok=False, summary="SMTP", lines=(("error", "smtp", "535 auth failed"),)
    )
    rows = site.json("GET", "/api/databases/Bright%20Teeth/diagnostics")
    assert [(r["component"], r["level"], r["message"]) for r in rows] == [
        ("smtp", "error", "535 auth failed")
    ]


def test_diagnostics_of_an_unknown_or_ineligible_database_is_404_with_a_reason(site: Site) -> None:
    status, body = site.request("GET", "/api/databases/Demo%20Practice/diagnostics")
    assert status == 404
    assert json.loads(body) == {"detail": "no eligible practice database named 'Demo Practice'"}


def test_restart_queues_one_command_row_and_answers_202(site: Site) -> None:
    status, body = site.request("POST", "/api/databases/Smile%20Dental/restart")
    assert status == 202
    answer = json.loads(body)
    assert (answer["name"], answer["coalesced"]) == ("Smile Dental", False)
    assert site.commands("Smile Dental") == 1


def test_repeated_restarts_coalesce_into_the_waiting_command(site: Site) -> None:
    first = site.json("POST", "/api/databases/Smile%20Dental/restart")
    again = site.json("POST", "/api/databases/Smile%20Dental/restart")
    assert again == {**first, "coalesced": True}
    assert site.commands("Smile Dental") == 1


def test_restart_from_another_site_is_refused(site: Site) -> None:
    status, body = site.request(
        "POST",
        "/api/databases/Smile%20Dental/restart",
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert status == 403
    assert "cross-site request refused" in json.loads(body)["detail"]
    assert site.commands("Smile Dental") == 0


def test_restart_with_a_foreign_origin_and_no_fetch_metadata_is_refused(site: Site) -> None:
    status, _ = site.request(
        "POST", "/api/databases/Smile%20Dental/restart", {"Origin": "http://evil.example"}
    )
    assert status == 403


def test_restart_from_the_page_itself_is_allowed(site: Site) -> None:
    host = site.base.removeprefix("http://")
    status, _ = site.request(
        "POST",
        "/api/databases/Smile%20Dental/restart",
        {"Origin": site.base, "Host": host, "Sec-Fetch-Site": "same-origin"},
    )
    assert status == 202


def test_healthz_follows_the_tree(site: Site) -> None:
    assert site.request("GET", "/healthz")[0] == 200
    site.tree["up"] = False
    assert site.request("GET", "/healthz")[0] == 503


def test_metrics_are_prometheus_text(site: Site) -> None:
    status, body = site.request("GET", "/metrics")
    assert status == 200
    assert "email_service_up 1" in body


def test_the_page_and_its_files_are_served_without_any_cdn(site: Site) -> None:
    status, page = site.request("GET", "/")
    assert status == 200
    assert "/static/status.js" in page
    assert "/static/status.css" in page
    assert "http://" not in page
    assert "https://" not in page
    assert site.request("GET", "/static/status.js")[0] == 200


def test_an_openapi_description_names_every_route(site: Site) -> None:
    spec = site.json("GET", "/openapi.json")
    assert set(spec["paths"]) == {
        "/api/status",
        "/api/databases/{name}/diagnostics",
        "/api/databases/{name}/restart",
        "/metrics",
        "/healthz",
    }
