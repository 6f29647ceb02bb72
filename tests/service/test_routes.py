"""/readyz, /metrics behind the web token, /favicon.ico and request counting, in memory."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from quart_trio import QuartTrio

from callbridge.config import load_config
from callbridge.metrics import Metrics
from callbridge.metrics.counters import CallCounters
from callbridge.metrics.routes import create_service_blueprint, metrics_app
from callbridge.service.health import Readiness
from tests.service.fakes import FakeDaemon

TOKEN = "route-test-token-of-thirty-two-chars"


def app_for(daemon: FakeDaemon, *, token: str | None = TOKEN) -> tuple[QuartTrio, Metrics]:
    config = load_config(None, {"CALLBRIDGE_WEB_TOKEN": token} if token else {})
    metrics = Metrics()
    metrics.watch(daemon, {}, max_calls=1)
    app = QuartTrio("test")
    app.register_blueprint(create_service_blueprint(config, metrics, Readiness(daemon, 1)))
    return app, metrics


class TestReadyz:
    async def test_ready_answers_200(self) -> None:
        app, _ = app_for(FakeDaemon())
        response = await app.test_client().get("/readyz")
        assert response.status_code == 200
        assert await response.get_json() == {"status": "ready"}

    async def test_draining_and_full_answer_503_with_the_reason(self) -> None:
        draining, _ = app_for(FakeDaemon(draining=True))
        full, _ = app_for(FakeDaemon(live_calls={"a": CallCounters()}))
        for app, reason in ((draining, "draining"), (full, "max_calls")):
            response = await app.test_client().get("/readyz")
            assert response.status_code == 503
            body = await response.get_json()
            assert (body["status"], body["reason"]) == ("not_ready", reason)


class TestMetricsRoute:
    async def test_needs_the_web_token(self) -> None:
        app, _ = app_for(FakeDaemon())
        client = app.test_client()
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200
        names = {f.name for f in text_string_to_metric_families(await right.get_data(as_text=True))}
        assert {"callbridge_active_calls", "callbridge_event_loop_lag_seconds"} <= names

    async def test_without_a_web_token_the_main_port_has_no_metrics(self) -> None:
        app, _ = app_for(FakeDaemon(), token=None)
        response = await app.test_client().get("/metrics")
        assert response.status_code == 404
        assert "metrics.listen" in await response.get_data(as_text=True)

    async def test_openmetrics_when_prometheus_asks_for_it(self) -> None:
        app, _ = app_for(FakeDaemon())
        response = await app.test_client().get(
            "/metrics",
            headers={
                "Authorization": f"Bearer {TOKEN}",
                "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4",
            },
        )
        assert response.content_type.startswith("application/openmetrics-text")
        assert (await response.get_data(as_text=True)).endswith("# EOF\n")

    async def test_the_separate_listener_app_needs_no_token(self) -> None:
        metrics = Metrics()
        response = await metrics_app(metrics).test_client().get("/metrics")
        assert response.status_code == 200


class TestRequestsAndFavicon:
    async def test_requests_are_counted_by_route_rule_and_status(self) -> None:
        app, metrics = app_for(FakeDaemon())
        client = app.test_client()
        await client.get("/readyz")
        await client.get("/no/such/path")
        body, _ = metrics.exposition()
        samples = {
            tuple(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(body.decode())
            if f.name == "callbridge_http_requests"
            for s in f.samples
            if s.name.endswith("_total")
        }
        assert samples[("route", "/readyz"), ("status", "200")] == 1
        assert samples[("route", "unmatched"), ("status", "404")] == 1

    async def test_favicon_is_an_icon(self) -> None:
        app, _ = app_for(FakeDaemon())
        response = await app.test_client().get("/favicon.ico")
        assert response.status_code == 200
        assert response.content_type == "image/x-icon"
        assert (await response.get_data())[:4] == b"\x00\x00\x01\x00"  # ICONDIR, type 1 = icon
