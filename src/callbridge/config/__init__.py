"""Configuration: ``config.toml`` plus the environment, validated once into a frozen attrs tree.

- ``schema``: the tree, one class per section (``Config``, ``ServerConfig``, ...);
- ``fields``: ``Secret`` and the per-setting metadata every other module reads;
- ``loading``: ``load_config(path, environ)``, the precedence of sources, type coercion;
- ``checks``: what a person mistypes (unknown keys, SIDs, URLs, listen addresses), credentials;
- ``languages``: the language codes Palabra knows and the language, menu and operator checks;
- ``prompts``: what callbridge says on the phone, by language.

Error handling: ``load_config`` raises one ``ConfigError`` listing every problem as
``section.key: must be ..., got ...``.
"""

from callbridge.config.checks import MIN_WEB_TOKEN_CHARS, missing_credentials
from callbridge.config.fields import DIRECTION_MODES, DirectionMode, Secret
from callbridge.config.loading import (
    SECRET_ENV,
    config_as_dict,
    default_env_file,
    environ_with_env_file,
    load_config,
    read_env_file,
)
from callbridge.config.prompts import MENU_OPTION_PROMPTS, PromptsConfig, pick_prompt
from callbridge.config.schema import (
    ClusterConfig,
    Config,
    DirectionOverrides,
    LanguagesConfig,
    LogConfig,
    MediaConfig,
    MetricsConfig,
    OperatorEntry,
    OperatorsConfig,
    PalabraConfig,
    ServerConfig,
    TranscriptsConfig,
    TwilioConfig,
)

__all__ = [
    "DIRECTION_MODES",
    "MENU_OPTION_PROMPTS",
    "MIN_WEB_TOKEN_CHARS",
    "SECRET_ENV",
    "ClusterConfig",
    "Config",
    "DirectionMode",
    "DirectionOverrides",
    "LanguagesConfig",
    "LogConfig",
    "MediaConfig",
    "MetricsConfig",
    "OperatorEntry",
    "OperatorsConfig",
    "PalabraConfig",
    "PromptsConfig",
    "Secret",
    "ServerConfig",
    "TranscriptsConfig",
    "TwilioConfig",
    "config_as_dict",
    "default_env_file",
    "environ_with_env_file",
    "load_config",
    "missing_credentials",
    "pick_prompt",
    "read_env_file",
]
