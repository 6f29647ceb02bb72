"""``server.port = 0``: the port bound names the instance (restart recovery finds its calls by it)."""

from __future__ import annotations

import socket

from callbridge.config import ClusterConfig, Config, ServerConfig
from callbridge.server import bind_socket, resolve_public_url


def test_port_zero_resolves_to_the_bound_port_in_the_instance_id_and_url() -> None:
    sock = bind_socket("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        config = resolve_public_url(Config(server=ServerConfig(host="127.0.0.1", port=0)), sock)
    finally:
        sock.close()
    assert config.server.port == port != 0
    assert config.instance_id == f"{socket.gethostname()}:{port}"
    assert config.public_url == config.instance_url == f"http://127.0.0.1:{port}"


def test_configured_names_and_urls_are_kept() -> None:
    sock = bind_socket("127.0.0.1", 0)
    try:
        given = Config(
            server=ServerConfig(host="127.0.0.1", port=0, public_url="https://bridge.example"),
            cluster=ClusterConfig(instance_id="node-1", instance_url="https://node-1.example"),
        )
        config = resolve_public_url(given, sock)
    finally:
        sock.close()
    assert (config.instance_id, config.public_url) == ("node-1", "https://bridge.example")
    assert config.instance_url == "https://node-1.example"
