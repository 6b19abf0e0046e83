"""The service's configuration: defaults, a TOML file, environment variables, overrides.

``load_settings()`` reads them, in that order, into one frozen ``Settings``, or raises
``ConfigError`` with a one-line message naming the key. ``docs/configuration.md`` is the
operator's reference; ``config/default.toml`` holds every key and its default.
"""

from config.loader import ConfigError, load_settings
from config.secrets import mask_url
from config.settings import (
    DatabasesSettings,
    HealthSettings,
    HttpSettings,
    MailSettings,
    RetentionSettings,
    ServiceSettings,
    Settings,
    SupervisionSettings,
    settings_as_dict,
)

__all__ = [
    "ConfigError",
    "DatabasesSettings",
    "HealthSettings",
    "HttpSettings",
    "MailSettings",
    "RetentionSettings",
    "ServiceSettings",
    "Settings",
    "SupervisionSettings",
    "load_settings",
    "mask_url",
    "settings_as_dict",
]
