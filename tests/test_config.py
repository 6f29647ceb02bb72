"""config.toml + environment -> one frozen, validated Config."""

from __future__ import annotations

import typing
from pathlib import Path

import attrs
import pytest

from callbridge.config import (
    Config,
    Secret,
    config_as_dict,
    environ_with_env_file,
    load_config,
    missing_credentials,
    read_env_file,
)
from callbridge.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SEED_ENV = {
    "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "TWILIO_AUTH_TOKEN": "tw-secret-token-value",
    "TWILIO_NUMBER": "+15550001111",
    "PALABRA_CLIENT_ID": "palabra-client-id-value",
    "PALABRA_CLIENT_SECRET": "palabra-client-secret-value",
    "HOST": "bridge.example.com",
    "OPERATOR_NUMBER": "+15550002222",
    "PORT": "8081",
    "SOURCE_LANGUAGE": "en",
    "TARGET_LANGUAGE": "ru",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path | None, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env or {})
    return info.value.problems


class TestShippedExample:
    def test_shipped_config_holds_every_key_with_its_default(self) -> None:
        """config.toml documents the whole schema: loading it changes nothing from the defaults."""
        assert load_config(ROOT / "config.toml", {}) == Config()

    def test_every_key_appears_in_the_shipped_file(self) -> None:
        text = (ROOT / "config.toml").read_text(encoding="utf-8")

        def walk(cls: type, prefix: str) -> None:
            hints = typing.get_type_hints(cls)
            for field in attrs.fields(cls):
                if attrs.has(hints[field.name]):
                    assert f"[{prefix}{field.name}]" in text
                    walk(hints[field.name], f"{prefix}{field.name}.")
                else:
                    assert field.name in text, f"{prefix}{field.name} missing from config.toml"

        walk(Config, "")

    def test_every_key_has_a_row_in_the_configuration_docs(self) -> None:
        text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")

        def section(name: str) -> str:
            start = text.index(f"### `[{name}]`")
            end = text.find("\n### ", start + 1)
            return text[start : end if end >= 0 else None]

        def walk(cls: type, prefix: str) -> None:
            hints = typing.get_type_hints(cls)
            rows = section(prefix.rstrip(".")) if prefix else ""
            for field in attrs.fields(cls):
                if attrs.has(hints[field.name]):
                    walk(hints[field.name], f"{prefix}{field.name}.")
                else:
                    assert f"| `{field.name}` |" in rows, f"{prefix}{field.name} not in the docs"

        walk(Config, "")


class TestSeedEnvironment:
    def test_seed_env_maps_onto_keys(self) -> None:
        config = load_config(ROOT / "config.toml", SEED_ENV)
        assert config.server.public_url == "https://bridge.example.com"
        assert config.public_url == "https://bridge.example.com"
        assert config.server.port == 8081
        assert config.twilio.account_sid == SEED_ENV["TWILIO_ACCOUNT_SID"]
        assert config.twilio.number == "+15550001111"
        assert config.operators.numbers == ["+15550002222"]
        assert config.languages.caller == "en"
        assert config.languages.operator == "ru"
        assert config.twilio.auth_token is not None
        assert config.twilio.auth_token.reveal() == "tw-secret-token-value"
        assert missing_credentials(config) == []

    def test_callbridge_variables_win_over_seed_and_file(self, tmp_path: Path) -> None:
        path = write(tmp_path, "[server]\nport = 9000\n[palabra]\nchunk_ms = 100\n")
        env = {**SEED_ENV, "CALLBRIDGE_SERVER_PORT": "9100", "CALLBRIDGE_PALABRA_CHUNK_MS": "640"}
        config = load_config(path, env)
        assert config.server.port == 9100
        assert config.palabra.chunk_ms == 640

    def test_env_override_reaches_nested_direction_table(self) -> None:
        config = load_config(None, {"CALLBRIDGE_PALABRA_CALLER_TO_OPERATOR_VOICE_ID": "v2"})
        assert config.palabra.caller_to_operator.voice_id == "v2"
        assert config.palabra.operator_to_caller.voice_id is None

    def test_list_from_env_is_comma_separated(self) -> None:
        config = load_config(None, {"CALLBRIDGE_OPERATORS_NUMBERS": "+1555000, +1555001"})
        assert config.operators.numbers == ["+1555000", "+1555001"]

    def test_env_file_fills_gaps_but_environment_wins(self, tmp_path: Path) -> None:
        env_file = tmp_path / ".env"
        env_file.write_text(
            "# seed settings\nexport HOST=\"x.example.org\"\nPORT=7000 # comment\nTWILIO_NUMBER='+1555'\n",
            encoding="utf-8",
        )
        assert read_env_file(env_file) == {
            "HOST": "x.example.org",
            "PORT": "7000",
            "TWILIO_NUMBER": "+1555",
        }
        merged = environ_with_env_file({"PORT": "7001"}, env_file)
        assert merged["PORT"] == "7001"
        assert merged["HOST"] == "x.example.org"

    def test_off_means_none_for_gains(self, tmp_path: Path) -> None:
        path = write(tmp_path, '[media]\noriginal_duck_gain_db = "off"\n')
        assert load_config(path, {}).media.original_duck_gain_db is None


class TestValidation:
    def test_out_of_range_names_key_and_value(self, tmp_path: Path) -> None:
        path = write(tmp_path, "[palabra]\nchunk_ms = 5\n")
        assert problems_of(path) == ["palabra.chunk_ms: must be 20..1000, got 5"]

    def test_every_problem_is_reported_at_once(self, tmp_path: Path) -> None:
        path = write(
            tmp_path, '[server]\nport = "abc"\nbogus = 1\n[media]\ncaller_to_operator = "loud"\n'
        )
        problems = problems_of(path)
        assert "server.port: must be an integer, got 'abc'" in problems
        assert "server.bogus: unknown key" in problems
        assert any(p.startswith("media.caller_to_operator: must be one of voice") for p in problems)

    def test_bad_env_value_names_the_key(self) -> None:
        assert problems_of(None, {"CALLBRIDGE_TWILIO_VALIDATE_SIGNATURES": "maybe"}) == [
            "twilio.validate_signatures: must be true or false, got 'maybe'"
        ]

    def test_secret_in_file_is_refused(self, tmp_path: Path) -> None:
        path = write(tmp_path, '[twilio]\nauth_token = "oops"\n')
        assert problems_of(path) == [
            "twilio.auth_token: secrets come only from the environment (TWILIO_AUTH_TOKEN)"
        ]

    def test_cross_field_rules(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "[palabra]\ndesired_queue_level_ms = 9000\nmax_queue_level_ms = 8000\n"
            '[languages]\ncaller = "auto"\n[operators]\nnumbers = ["5551234"]\n'
            '[server]\npublic_url = "ftp://x"\n',
        )
        problems = problems_of(path)
        assert any(p.startswith("palabra.max_queue_level_ms: must be above") for p in problems)
        assert any(p.startswith("languages.caller_detectable") for p in problems)
        assert any(p.startswith("operators.numbers: must be E.164") for p in problems)
        assert any(p.startswith("server.public_url: must be a http/https URL") for p in problems)

    def test_direction_override_queue_levels_are_checked_too(self, tmp_path: Path) -> None:
        path = write(tmp_path, "[palabra.operator_to_caller]\ndesired_queue_level_ms = 30000\n")
        assert problems_of(path) == [
            "palabra.operator_to_caller.max_queue_level_ms: must be above "
            "desired_queue_level_ms (30000), got 24000"
        ]

    def test_invalid_toml_is_a_config_error(self, tmp_path: Path) -> None:
        problems = problems_of(write(tmp_path, "[server\n"))
        assert "invalid TOML" in problems[0]

    def test_missing_credentials_are_listed(self) -> None:
        problems = missing_credentials(load_config(None, {}))
        assert any(p.startswith("twilio.auth_token") for p in problems)
        assert any(p.startswith("palabra: credentials required") for p in problems)
        assert (
            missing_credentials(load_config(None, {**SEED_ENV, "PALABRA_CLIENT_SECRET": ""})) != []
        )


class TestWebToken:
    def test_a_short_token_is_refused(self) -> None:
        with pytest.raises(ConfigError) as caught:
            load_config(None, {**SEED_ENV, "CALLBRIDGE_WEB_TOKEN": "x" * 31})
        assert caught.value.problems == [
            "server.web_token: must be at least 32 characters (CALLBRIDGE_WEB_TOKEN; make one "
            "with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'), got 31"
        ]

    def test_a_long_enough_token_or_none_is_fine(self) -> None:
        assert load_config(None, {**SEED_ENV, "CALLBRIDGE_WEB_TOKEN": "x" * 32}).server.web_token
        assert load_config(None, SEED_ENV).server.web_token is None


class TestSecrets:
    def test_secret_never_shows_in_repr_or_dump(self) -> None:
        config = load_config(None, SEED_ENV)
        dumped = repr(config) + str(config_as_dict(config))
        for name in ("TWILIO_AUTH_TOKEN", "PALABRA_CLIENT_ID", "PALABRA_CLIENT_SECRET"):
            assert SEED_ENV[name] not in dumped
        assert config_as_dict(config)["twilio"]["auth_token"] == "***"
        assert repr(Secret("x")) == "Secret('***')"

    def test_secrets_lists_every_value(self) -> None:
        config = load_config(
            None, {**SEED_ENV, "CALLBRIDGE_WEB_TOKEN": "web-token-value-of-at-least-32-characters"}
        )
        assert set(config.secrets()) == {
            "tw-secret-token-value",
            "palabra-client-id-value",
            "palabra-client-secret-value",
            "web-token-value-of-at-least-32-characters",
        }


class TestMistakesAPersonMakes:
    def problems(self, tmp_path: Path, text: str, **env: str) -> list[str]:
        with pytest.raises(ConfigError) as info:
            load_config(write(tmp_path, text), {**SEED_ENV, **env})
        return info.value.problems

    def test_a_quoted_boolean_in_the_file_is_refused(self, tmp_path: Path) -> None:
        problems = self.problems(tmp_path, '[twilio]\nvalidate_signatures = "yes"\n')
        assert problems == ["twilio.validate_signatures: must be true or false, got 'yes'"]

    def test_a_boolean_word_from_the_environment_still_works(self) -> None:
        env = {**SEED_ENV, "CALLBRIDGE_TWILIO_VALIDATE_SIGNATURES": "no"}
        assert load_config(None, env).twilio.validate_signatures is False

    def test_unknown_key_suggests_the_close_one(self, tmp_path: Path) -> None:
        problems = self.problems(tmp_path, "[media]\nleg_idle_timeout = 3\n")
        assert problems == [
            "media.leg_idle_timeout: unknown key (did you mean 'leg_idle_timeout_s'?)"
        ]

    def test_misspelled_variable_is_reported_with_the_right_name(self, tmp_path: Path) -> None:
        problems = self.problems(tmp_path, "", CALLBRIDGE_PALABRA_CHUNKMS="640")
        assert problems == [
            "CALLBRIDGE_PALABRA_CHUNKMS: unknown variable (did you mean 'CALLBRIDGE_PALABRA_CHUNK_MS'?)"
        ]

    def test_a_secret_in_the_section_key_form_is_reported(self, tmp_path: Path) -> None:
        problems = self.problems(tmp_path, "", CALLBRIDGE_TWILIO_AUTH_TOKEN="x")
        assert problems[0].startswith("CALLBRIDGE_TWILIO_AUTH_TOKEN: secrets are read only")

    @pytest.mark.parametrize("sid", ["AC123", "ac" + "1" * 32, "AC" + "g" * 32, "SK" + "1" * 32])
    def test_account_sid_must_be_ac_and_32_hex(self, tmp_path: Path, sid: str) -> None:
        problems = self.problems(tmp_path, "", TWILIO_ACCOUNT_SID=sid)
        assert problems == [
            f"twilio.account_sid: must be AC followed by 32 hex digits, got {sid!r}"
        ]

    def test_language_palabra_does_not_know_is_refused_with_a_suggestion(
        self, tmp_path: Path
    ) -> None:
        problems = self.problems(
            tmp_path,
            '[languages]\ncaller_detectable = ["xx"]\n',
            SOURCE_LANGUAGE="english",
            TARGET_LANGUAGE="pt-BR",
        )
        assert problems[0].startswith("languages.caller: must be a language code Palabra knows")
        assert problems[0].endswith("got 'english' (did you mean 'en'?)")
        assert problems[1].startswith("languages.caller_detectable: must be a language")
        assert len(problems) == 2  # pt-BR is a Palabra target, whatever its case

    @pytest.mark.parametrize("listen", ["9464", "localhost:http", "127.0.0.1:70000"])
    def test_metrics_listen_must_be_host_and_port(self, tmp_path: Path, listen: str) -> None:
        problems = self.problems(tmp_path, f'[metrics]\nlisten = "{listen}"\n')
        assert problems[0].startswith("metrics.listen: must be host:port")

    def test_metrics_listen_with_only_a_port_means_loopback(self) -> None:
        from callbridge.config.checks import parse_listen

        assert parse_listen(":9464") == ("127.0.0.1", 9464)
        assert parse_listen("[::1]:9464") == ("::1", 9464)
