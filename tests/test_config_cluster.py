"""The [cluster] section and transcripts.database_url: defaults, validation, secrets."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from callbridge.config import config_as_dict, load_config
from callbridge.errors import ConfigError


def problems_of(text: str, tmp_path: Path, env: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env or {})
    return info.value.problems


def test_defaults_keep_a_single_instance_on_sqlite() -> None:
    config = load_config(None, {"PORT": "8123"})
    assert (config.cluster.redis_url, config.transcripts.database_url) == ("", "")
    assert config.instance_id == f"{socket.gethostname()}:8123"
    assert config.instance_url == config.public_url


def test_cluster_keys_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[cluster]\nredis_url = "redis://10.0.0.5:6379/0"\ninstance_id = "node-a:8001"\n'
        'instance_url = "https://bridge.example.com/i/a/"\n'
        '[transcripts]\ndatabase_url = "postgresql://callbridge@db:5432/callbridge?sslmode=require"\n',
        encoding="utf-8",
    )
    config = load_config(path, {"CALLBRIDGE_CLUSTER_HEARTBEAT_S": "1.5"})
    assert config.instance_id == "node-a:8001"
    assert config.instance_url == "https://bridge.example.com/i/a"
    assert config.cluster.heartbeat_s == 1.5


def test_passwords_in_urls_are_refused_without_echoing_them(tmp_path: Path) -> None:
    problems = problems_of(
        '[cluster]\nredis_url = "redis://:hunter2@r:6379/0"\n'
        '[transcripts]\ndatabase_url = "postgresql://u:sekrit@db/x"\n',
        tmp_path,
    )
    assert problems == [
        "cluster.redis_url: must not hold a password (set CALLBRIDGE_REDIS_PASSWORD instead)",
        "transcripts.database_url: must not hold a password (set PGPASSWORD or ~/.pgpass instead)",
    ]


def test_bad_schemes_names_and_a_redis_without_shared_store(tmp_path: Path) -> None:
    problems = problems_of(
        '[cluster]\nredis_url = "http://r:6379"\ninstance_id = "a b"\nkey_prefix = "x/y"\n'
        'instance_url = "ftp://x"\n',
        tmp_path,
    )
    assert problems == [
        "cluster.instance_url: must be a http/https URL, got 'ftp://x'",
        "cluster.redis_url: must be a redis/rediss URL, got 'http://r:6379'",
        "cluster.instance_id: must be 1-64 of A-Z a-z 0-9 . _ : -, got 'a b'",
        "cluster.key_prefix: must be 1-64 of A-Z a-z 0-9 . _ : -, got 'x/y'",
        "transcripts.database_url: required when cluster.redis_url is set "
        "(every instance must write to one shared store)",
    ]
    assert problems_of('[transcripts]\ndatabase_url = "mysql://db/x"\n', tmp_path) == [
        "transcripts.database_url: must be a postgresql/postgres URL, got 'mysql://db/x'"
    ]


def test_redis_password_is_a_secret() -> None:
    config = load_config(None, {"CALLBRIDGE_REDIS_PASSWORD": "redis-pass-value"})
    assert "redis-pass-value" in config.secrets()
    assert config_as_dict(config)["cluster"]["redis_password"] == "***"
    assert "redis-pass-value" not in repr(config)
