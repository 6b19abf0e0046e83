"""The ``[oauth]`` configuration keys: where the sign-in providers are reached."""

from __future__ import annotations

import pytest

from config import load_settings
from config.loader import ConfigError


def test_a_local_authority_over_https_is_accepted() -> None:
    settings = load_settings(
        environ={}, overrides={"oauth.microsoft_authority": "https://127.0.0.1:18443/"}
    )
    assert settings.oauth.microsoft_authority == "https://127.0.0.1:18443"


def test_plain_http_to_a_loopback_token_endpoint_is_accepted() -> None:
    settings = load_settings(
        environ={}, overrides={"oauth.google_token_uri": "http://127.0.0.1:18080/token"}
    )
    assert settings.oauth.google_token_uri == "http://127.0.0.1:18080/token"


def test_plain_http_elsewhere_is_refused_by_key_name() -> None:
    with pytest.raises(ConfigError, match=r"oauth\.google_token_uri") as caught:
        load_settings(
            environ={}, overrides={"oauth.google_token_uri": "http://tokens.example/token"}
        )
    assert "loopback" in str(caught.value)


def test_an_environment_variable_sets_the_authority() -> None:
    settings = load_settings(
        environ={"EMAIL_SERVICE_OAUTH_MICROSOFT_AUTHORITY": "https://login.example.test"}
    )
    assert settings.oauth.microsoft_authority == "https://login.example.test"


def test_a_negative_refresh_margin_is_refused_by_key_name() -> None:
    with pytest.raises(ConfigError, match=r"oauth\.refresh_margin_seconds"):
        load_settings(environ={}, overrides={"oauth.refresh_margin_seconds": -1})
