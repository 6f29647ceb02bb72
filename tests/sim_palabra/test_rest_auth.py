"""Legacy REST sessions and both auth modes, including the WebSocket upgrade checks."""

from __future__ import annotations

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.sim_palabra.conftest import StartSim
from tests.sim_palabra.helpers import API_KEY, open_client, stream_path, task, upgrade_status

CREDS = {"ClientID": "sim-client-id", "ClientSecret": "sim-client-secret"}


async def test_client_credentials_session_lifecycle(start_sim: StartSim) -> None:
    """201 + documented fields; the ws_url/publisher pair connects; DELETE 204; report tracks it."""
    sim = await start_sim()
    async with httpx.AsyncClient(base_url=sim.url) as http:
        created = await http.post("/session-storage/session", headers=CREDS, json={"data": {}})
        assert created.status_code == 201
        body = created.json()
        assert body["ok"] is True
        data = body["data"]
        assert set(data) >= {
            "publisher",
            "subscriber",
            "webrtc_room_name",
            "webrtc_url",
            "ws_url",
            "intent",
            "id",
        }
        assert data["subscriber"] == []
        assert data["intent"] == "api"
        assert data["ws_url"].startswith(sim.state.ws_base + "/streaming-api/")
        assert data["publisher"].count(".") == 2  # JWT-shaped
        listed = await http.get("/session-storage/sessions", headers=CREDS)
        assert [s["id"] for s in listed.json()["data"]] == [data["id"]]
        with trio.fail_after(5):
            async with open_websocket_url(f"{data['ws_url']}?token={data['publisher']}") as ws:
                await ws.send_message('{"message_type":"get_task","data":{}}')
                assert "NOT_FOUND" in str(await ws.get_message())
        deleted = await http.delete(f"/session-storage/sessions/{data['id']}", headers=CREDS)
        assert deleted.status_code == 204
        again = await http.delete(f"/session-storage/sessions/{data['id']}", headers=CREDS)
        assert again.status_code == 404
        report = (await http.get("/_sim/report")).json()
    assert report["sessions"]["deleted"] == [data["id"]]
    assert report["sessions"]["leaked"] == []
    assert report["sessions"]["created"][0]["auth_mode"] == "client_credentials"
    assert report["sessions"]["created"][0]["connections"] == 1
    assert report["connections"][0]["auth_mode"] == "session"
    assert report["connections"][0]["session_id"] == data["id"]
    ws_path = data["ws_url"].removeprefix(sim.state.ws_base)
    # A deleted session's token is dead.
    assert await upgrade_status(sim, f"{ws_path}?token={data['publisher']}") == 403


async def test_header_spelling_and_bearer_are_accepted(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with httpx.AsyncClient(base_url=sim.url) as http:
        spelled = {"ClientId": "sim-client-id", "CLIENTSECRET": "sim-client-secret"}
        assert (await http.post("/session-storage/session", headers=spelled)).status_code == 201
        bearer = {"Authorization": f"Bearer {API_KEY}"}
        made = await http.post(
            "/session-storage/session", headers=bearer, json={"data": {"intent": "tts_api"}}
        )
        assert made.status_code == 201
        assert made.json()["data"]["intent"] == "tts_api"
        report = (await http.get("/_sim/report")).json()
    assert [s["auth_mode"] for s in report["sessions"]["created"]] == [
        "client_credentials",
        "bearer",
    ]
    assert len(report["sessions"]["leaked"]) == 2  # nobody deleted them


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"ClientID": "sim-client-id"}, 401),
        ({"ClientID": "sim-client-id", "ClientSecret": "wrong"}, 403),
        ({"Authorization": "Bearer wrong"}, 403),
    ],
)
async def test_bad_credentials_get_the_error_envelope(
    start_sim: StartSim, headers: dict[str, str], status: int
) -> None:
    sim = await start_sim()
    async with httpx.AsyncClient(base_url=sim.url) as http:
        response = await http.post("/session-storage/session", headers=headers)
    assert response.status_code == status
    body = response.json()
    assert body["ok"] is False
    assert set(body["errors"][0]) >= {"title", "detail", "error_code", "instance", "status", "type"}


async def test_session_5xx_fault_fails_n_times_then_succeeds(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with httpx.AsyncClient(base_url=sim.url) as http:
        armed = await http.post("/_sim/faults", json={"session_5xx": 2})
        assert armed.json()["faults"]["session_5xx"] == 2
        statuses = [
            (await http.post("/session-storage/session", headers=CREDS)).status_code
            for _ in range(3)
        ]
    assert statuses == [503, 503, 201]


async def test_api_key_websocket_and_wrong_token(start_sim: StartSim) -> None:
    """Any path segment works with the key; a wrong or missing token is a bare 403 upgrade."""
    sim = await start_sim()
    with trio.fail_after(5):
        async with open_client(sim, segment="0f1e2d3c4b5a69788796a5b4c3d2e1f0") as client:
            status = await client.ready(task())
            assert status["data"]["event"] == "started"
        assert await upgrade_status(sim, stream_path("nope")) == 403
        assert await upgrade_status(sim, stream_path(None)) == 403
        assert await upgrade_status(sim, f"/v1/other?token={API_KEY}") == 404
    assert sim.state.connections[0].auth_mode == "api_key"
    assert [r["status"] for r in sim.state.rejected_upgrades] == [403, 403, 404]


async def test_wrong_token_fault_rejects_a_valid_key(start_sim: StartSim) -> None:
    sim = await start_sim()
    sim.state.faults.update({"wrong_token": 1})
    with trio.fail_after(5):
        assert await upgrade_status(sim, stream_path()) == 403
        async with open_client(sim) as client:  # the fault fired once
            await client.send("get_task", {})
            assert (await client.until("error"))["data"]["code"] == "NOT_FOUND"
