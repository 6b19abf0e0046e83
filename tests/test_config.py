"""The configuration: layers, parsing, and errors that name the key and never a password."""

from __future__ import annotations

import dataclasses
import json
import socket
import tomllib
import typing
from importlib import resources
from pathlib import Path

import pytest

from config import (
    ConfigError,
    DatabasesSettings,
    HealthSettings,
    HttpSettings,
    ServiceSettings,
    Settings,
    SupervisionSettings,
    load_settings,
    mask_url,
    settings_as_dict,
)

NO_ENV: dict[str, str] = {}


def write(tmp_path: Path, text: str, name: str = "service.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(
    path: Path | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, object] | None = None,
) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=NO_ENV if environ is None else environ, overrides=overrides)
    return caught.value


# --- defaults -------------------------------------------------------------------------------


def test_default_toml_has_a_key_for_every_field_and_no_other() -> None:
    text = resources.files("config").joinpath("default.toml").read_text(encoding="utf-8")
    in_file = {f"{s}.{k}" for s, table in tomllib.loads(text).items() for k in table}
    in_classes = {
        f"{section}.{f.name}"
        for section, cls in typing.get_type_hints(Settings).items()
        for f in dataclasses.fields(cls)
    }
    assert in_file == in_classes


def test_defaults_are_the_documented_values() -> None:
    settings = load_settings(environ=NO_ENV)
    assert settings_as_dict(settings) == {
        "service": {
            "server_id": settings.service.server_id,
            "genuine_server_check": False,
            "event_store": "sqlite:///var/events.sqlite3",
            "key_file": "var/secret.key",
        },
        "databases": {
            "server_url": "sqlite:///var/practices",
            "rescan_seconds": 60.0,
            "max_connections": 10,
        },
        "health": {
            "checkin_seconds": 15.0,
            "probe_seconds": 60.0,
            "grace_seconds": 15.0,
            "checkin_history_days": 7.0,
        },
        "mail": {
            "outbox_poll_seconds": 5.0,
            "outbox_batch": 50,
            "inbox_poll_seconds": 30.0,
            "io_timeout_seconds": 15.0,
            "ca_file": "",
            "poison_limit": 3,
        },
        "supervision": {
            "max_restarts": 5,
            "within_seconds": 60.0,
            "backoff_min_seconds": 1.0,
            "backoff_max_seconds": 300.0,
        },
        "http": {"listen": "127.0.0.1:8025", "allowed_hosts": ()},
        "retention": {
            "enabled": True,
            "steady_days": 7.0,
            "selftest_failure_days": 90.0,
            "keep_days": 400.0,
            "checkpoint_seconds": 60.0,
            "prune_every_seconds": 3600.0,
            "batch_rows": 500,
        },
        "oauth": {
            "microsoft_authority": "https://login.microsoftonline.com",
            "google_token_uri": "https://oauth2.googleapis.com/token",
            "ca_file": "",
            "refresh_margin_seconds": 300.0,
        },
    }


def test_sections_have_their_classes() -> None:
    settings = load_settings(environ=NO_ENV)
    assert isinstance(settings.service, ServiceSettings)
    assert isinstance(settings.databases, DatabasesSettings)
    assert isinstance(settings.health, HealthSettings)
    assert isinstance(settings.supervision, SupervisionSettings)
    assert isinstance(settings.http, HttpSettings)


def test_settings_are_frozen() -> None:
    settings = load_settings(environ=NO_ENV)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.health.checkin_seconds = 1.0  # type: ignore[misc]


# --- server_id ------------------------------------------------------------------------------


def test_blank_server_id_is_this_machines_host_name() -> None:
    settings = load_settings(environ={"EMAIL_SERVICE_SERVICE_SERVER_ID": "   "})
    assert settings.service.server_id == socket.gethostname().strip()
    assert settings.service.server_id


def test_server_id_is_stripped() -> None:
    settings = load_settings(environ={"EMAIL_SERVICE_SERVICE_SERVER_ID": "  SRV-01 \t"})
    assert settings.service.server_id == "SRV-01"


# --- layers ---------------------------------------------------------------------------------


def test_file_overrides_defaults_key_by_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[health]\nprobe_seconds = 5\n")
    settings = load_settings(path, environ=NO_ENV)
    assert settings.health.probe_seconds == 5.0
    assert settings.health.checkin_seconds == 15.0


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[health]\nprobe_seconds = 5\n")
    settings = load_settings(path, environ={"EMAIL_SERVICE_HEALTH_PROBE_SECONDS": "7.5"})
    assert settings.health.probe_seconds == 7.5


def test_overrides_beat_environment() -> None:
    settings = load_settings(
        environ={"EMAIL_SERVICE_HEALTH_PROBE_SECONDS": "7.5"},
        overrides={"health.probe_seconds": 2},
    )
    assert settings.health.probe_seconds == 2.0


def test_email_service_config_names_the_file_when_no_path_is_given(tmp_path: Path) -> None:
    path = write(tmp_path, '[http]\nlisten = "0.0.0.0:9000"\n')
    settings = load_settings(environ={"EMAIL_SERVICE_CONFIG": str(path)})
    assert settings.http.listen == "0.0.0.0:9000"


def test_explicit_path_wins_over_email_service_config(tmp_path: Path) -> None:
    chosen = write(tmp_path, '[http]\nlisten = "0.0.0.0:9000"\n', "chosen.toml")
    other = write(tmp_path, '[http]\nlisten = "0.0.0.0:9999"\n', "other.toml")
    settings = load_settings(chosen, environ={"EMAIL_SERVICE_CONFIG": str(other)})
    assert settings.http.listen == "0.0.0.0:9000"


def test_empty_email_service_config_means_no_file() -> None:
    assert load_settings(environ={"EMAIL_SERVICE_CONFIG": ""}) == load_settings(environ=NO_ENV)


def test_other_environment_variables_are_ignored() -> None:
    settings = load_settings(environ={"PATH": "/bin", "EMAIL_SERVICEX": "1"})
    assert settings == load_settings(environ=NO_ENV)


def test_file_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b'\xef\xbb\xbf[http]\nlisten = "[::1]:8025"\n')
    assert load_settings(path, environ=NO_ENV).http.listen == "[::1]:8025"


# --- values from the environment ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("On", True),
        ("false", False),
        ("0", False),
        ("No", False),
        ("off", False),
    ],
)
def test_environment_booleans_accept_the_usual_words(text: str, expected: bool) -> None:
    settings = load_settings(environ={"EMAIL_SERVICE_SERVICE_GENUINE_SERVER_CHECK": text})
    assert settings.service.genuine_server_check is expected


def test_environment_boolean_rejects_other_words() -> None:
    error = error_of(environ={"EMAIL_SERVICE_SERVICE_GENUINE_SERVER_CHECK": "maybe"})
    assert error.key == "service.genuine_server_check"
    assert "EMAIL_SERVICE_SERVICE_GENUINE_SERVER_CHECK" in str(error)
    assert "yes/no" in str(error)


def test_environment_numbers_are_parsed_from_text() -> None:
    settings = load_settings(
        environ={
            "EMAIL_SERVICE_SUPERVISION_MAX_RESTARTS": "3",
            "EMAIL_SERVICE_HEALTH_GRACE_SECONDS": "2.5",
        }
    )
    assert settings.supervision.max_restarts == 3
    assert settings.health.grace_seconds == 2.5


def test_environment_whole_number_rejects_a_fraction() -> None:
    error = error_of(environ={"EMAIL_SERVICE_SUPERVISION_MAX_RESTARTS": "2.5"})
    assert error.key == "supervision.max_restarts"
    assert error.source == "environment variable EMAIL_SERVICE_SUPERVISION_MAX_RESTARTS"


def test_environment_number_rejects_words() -> None:
    error = error_of(environ={"EMAIL_SERVICE_HEALTH_PROBE_SECONDS": "a minute"})
    assert str(error) == (
        "config: bad value for 'health.probe_seconds' in environment variable "
        "EMAIL_SERVICE_HEALTH_PROBE_SECONDS: expected a number greater than 0, got 'a minute'"
    )


def test_unknown_email_service_variable_is_an_error_naming_it() -> None:
    error = error_of(environ={"EMAIL_SERVICE_HEALTH_CHEKIN_SECONDS": "5"})
    assert "EMAIL_SERVICE_HEALTH_CHEKIN_SECONDS" in str(error)
    assert "did you mean 'EMAIL_SERVICE_HEALTH_CHECKIN_SECONDS'" in str(error)


# --- unknown keys ---------------------------------------------------------------------------


def test_unknown_key_in_file_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[health]\nchekin_seconds = 5\n")
    error = error_of(path)
    assert str(error).startswith(f"config: unknown key 'health.chekin_seconds' in {path}")
    assert "did you mean 'health.checkin_seconds'?" in str(error)


def test_unknown_section_in_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[helth]\ncheckin_seconds = 5\n")
    assert str(error_of(path)).startswith(f"config: unknown section 'helth' in {path}")


def test_key_outside_its_section_is_unknown(tmp_path: Path) -> None:
    path = write(tmp_path, 'server_id = "SRV"\n')
    error = error_of(path)
    assert error.key == "server_id"
    assert "did you mean 'service.server_id'?" in str(error)


def test_section_that_is_not_a_table_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "health = 5\n")
    assert "expected a table" in str(error_of(path))


def test_unknown_override_key_is_an_error() -> None:
    error = error_of(overrides={"http.port": 80})
    assert str(error).startswith("config: unknown key 'http.port' in overrides")


# --- types and ranges -----------------------------------------------------------------------


def test_string_where_a_number_is_wanted_names_key_file_and_expectation(tmp_path: Path) -> None:
    path = write(tmp_path, '[health]\ncheckin_seconds = "15"\n')
    assert str(error_of(path)) == (
        f"config: bad value for 'health.checkin_seconds' in {path}: "
        "expected a number greater than 0, got '15' (a string)"
    )


def test_boolean_where_a_whole_number_is_wanted_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "[supervision]\nmax_restarts = true\n")
    assert error_of(path).key == "supervision.max_restarts"


def test_boolean_where_a_number_is_wanted_is_rejected() -> None:
    assert error_of(overrides={"health.grace_seconds": False}).key == "health.grace_seconds"


def test_fraction_where_a_whole_number_is_wanted_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "[supervision]\nmax_restarts = 2.0\n")
    assert error_of(path).key == "supervision.max_restarts"


def test_number_where_a_boolean_is_wanted_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "[service]\ngenuine_server_check = 1\n")
    assert error_of(path).key == "service.genuine_server_check"


def test_whole_number_in_file_becomes_a_float_for_seconds(tmp_path: Path) -> None:
    path = write(tmp_path, "[databases]\nrescan_seconds = 30\n")
    rescan = load_settings(path, environ=NO_ENV).databases.rescan_seconds
    assert isinstance(rescan, float)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("databases.rescan_seconds", 0),
        ("health.checkin_seconds", 0.0),
        ("health.probe_seconds", -1),
        ("health.grace_seconds", -0.5),
        ("supervision.max_restarts", 0),
        ("supervision.within_seconds", 0),
        ("supervision.backoff_min_seconds", 0),
        ("databases.max_connections", 0),
    ],
)
def test_out_of_range_values_are_rejected(key: str, value: object) -> None:
    assert error_of(overrides={key: value}).key == key


def test_zero_grace_is_allowed() -> None:
    assert (
        load_settings(environ={"EMAIL_SERVICE_HEALTH_GRACE_SECONDS": "0"}).health.grace_seconds == 0
    )


@pytest.mark.parametrize("text", ["nan", "inf", "-inf"])
def test_numbers_must_be_finite(text: str) -> None:
    assert error_of(environ={"EMAIL_SERVICE_HEALTH_PROBE_SECONDS": text}).key == (
        "health.probe_seconds"
    )


def test_backoff_max_below_backoff_min_names_both_sources(tmp_path: Path) -> None:
    path = write(tmp_path, "[supervision]\nbackoff_min_seconds = 10\n")
    error = error_of(path, environ={"EMAIL_SERVICE_SUPERVISION_BACKOFF_MAX_SECONDS": "5"})
    assert error.key == "supervision.backoff_max_seconds"
    assert "EMAIL_SERVICE_SUPERVISION_BACKOFF_MAX_SECONDS" in str(error)
    assert str(path) in str(error)


def test_an_io_timeout_above_the_checkin_interval_is_refused_naming_both_keys(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "[mail]\nio_timeout_seconds = 20\n")
    error = error_of(path, environ=NO_ENV)
    assert error.key == "mail.io_timeout_seconds"
    assert "mail.io_timeout_seconds (20" in str(error)
    assert "health.checkin_seconds (15.0" in str(error)
    assert "\n" not in str(error)


def test_a_checkin_interval_below_the_default_io_timeout_is_blamed_on_the_interval() -> None:
    error = error_of(environ={"EMAIL_SERVICE_HEALTH_CHECKIN_SECONDS": "5"})
    assert error.key == "health.checkin_seconds"
    assert "EMAIL_SERVICE_HEALTH_CHECKIN_SECONDS" in str(error)


def test_an_io_timeout_equal_to_the_checkin_interval_is_allowed() -> None:
    overrides: dict[str, object] = {"health.checkin_seconds": 4, "mail.io_timeout_seconds": 4}
    assert load_settings(environ=NO_ENV, overrides=overrides).mail.io_timeout_seconds == 4


def test_backoff_max_equal_to_backoff_min_is_allowed() -> None:
    overrides: dict[str, object] = {
        "supervision.backoff_min_seconds": 3,
        "supervision.backoff_max_seconds": 3,
    }
    assert load_settings(environ=NO_ENV, overrides=overrides).supervision.backoff_max_seconds == 3


def test_a_bad_value_stops_start_up_even_when_a_later_layer_replaces_it(tmp_path: Path) -> None:
    path = write(tmp_path, "[health]\ncheckin_seconds = -1\n")
    error = error_of(path, environ={"EMAIL_SERVICE_HEALTH_CHECKIN_SECONDS": "5"})
    assert error.source == str(path)


# --- URLs -----------------------------------------------------------------------------------


def test_relative_sqlite_paths_are_kept_as_written() -> None:
    settings = load_settings(environ={"EMAIL_SERVICE_DATABASES_SERVER_URL": "sqlite:///data/dbs"})
    assert settings.databases.server_url == "sqlite:///data/dbs"


def test_server_url_of_a_real_server_is_accepted() -> None:
    url = "postgresql+psycopg://svc:pw@db.local:5432"
    assert load_settings(environ=NO_ENV, overrides={"databases.server_url": url}).databases


def test_url_sqlalchemy_cannot_parse_is_rejected() -> None:
    error = error_of(environ={"EMAIL_SERVICE_SERVICE_EVENT_STORE": "not a url"})
    assert error.key == "service.event_store"
    assert "SQLAlchemy cannot parse it" in str(error)


def test_url_with_unknown_backend_is_rejected() -> None:
    error = error_of(overrides={"service.event_store": "postgresq://h/events"})
    assert "unknown database backend 'postgresq'" in str(error)


def test_server_url_naming_a_database_is_rejected() -> None:
    error = error_of(overrides={"databases.server_url": "postgresql://h/practice1"})
    assert "names the database 'practice1'" in str(error)


def test_sqlite_server_url_needs_a_folder() -> None:
    assert error_of(overrides={"databases.server_url": "sqlite://"}).key == "databases.server_url"


def test_error_about_a_url_never_shows_its_password() -> None:
    error = error_of(environ={"EMAIL_SERVICE_DATABASES_SERVER_URL": "postgresql://u:s3cret@h/db"})
    assert "s3cret" not in str(error)
    assert "postgresql://u:***@h/db" in str(error)


def test_error_about_an_unparseable_url_never_shows_its_password() -> None:
    error = error_of(overrides={"service.event_store": "postgresql//u:s3cret@h/db"})
    assert "s3cret" not in str(error)


def test_error_about_a_long_url_never_shows_its_password() -> None:
    password = "s3cret" * 30
    error = error_of(overrides={"service.event_store": ["postgresql://u:" + password + "@h"]})
    assert "s3cret" not in str(error)


def test_repr_hides_passwords() -> None:
    settings = load_settings(
        environ=NO_ENV,
        overrides={
            "service.event_store": "postgresql://u:s3cret@h/events",
            "databases.server_url": "mssql+pyodbc://sa:s3cret@sqlhost",
        },
    )
    assert "s3cret" not in repr(settings)
    assert "postgresql://u:***@h/events" in repr(settings.service)


def test_settings_as_dict_hides_passwords_and_is_json() -> None:
    settings = load_settings(
        environ=NO_ENV, overrides={"databases.server_url": "postgresql://u:s3cret@h"}
    )
    shown = settings_as_dict(settings)
    assert shown["databases"]["server_url"] == "postgresql://u:***@h"
    assert "s3cret" not in json.dumps(shown)


def test_settings_still_hold_the_real_password() -> None:
    url = "postgresql://u:s3cret@h/events"
    settings = load_settings(environ=NO_ENV, overrides={"service.event_store": url})
    assert settings.service.event_store == url


# --- mask_url -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:p@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p%40ss@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
        ("sqlite:///var/practices", "sqlite:///var/practices"),
        ("postgresql://h/db?user=u&password=p&x=1", "postgresql://h/db?user=u&password=***&x=1"),
        (
            "mssql+pyodbc:///?odbc_connect=DRIVER%3Dx%3BUID%3Du%3BPWD%3Dp%3B",
            "mssql+pyodbc:///?odbc_connect=DRIVER%3Dx%3BUID%3Du%3BPWD%3D***%3B",
        ),
    ],
)
def test_mask_url_hides_only_the_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked


# --- listen ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:8025", "127.0.0.1", 8025),
        ("localhost:0", "localhost", 0),
        ("0.0.0.0:65535", "0.0.0.0", 65535),
        ("[::1]:8025", "::1", 8025),
    ],
)
def test_listen_splits_into_host_and_port(listen: str, host: str, port: int) -> None:
    http = load_settings(environ={"EMAIL_SERVICE_HTTP_LISTEN": listen}).http
    assert (http.listen, http.host, http.port) == (listen, host, port)


@pytest.mark.parametrize(
    "listen",
    ["127.0.0.1", ":8025", "host:65536", "host:http", "::1:8025", "[]:8025", "[::1]8025", "a b:1"],
)
def test_bad_listen_is_rejected(listen: str) -> None:
    assert error_of(environ={"EMAIL_SERVICE_HTTP_LISTEN": listen}).key == "http.listen"


# --- files ----------------------------------------------------------------------------------


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[health]\ncheckin_seconds = \n")
    error = error_of(path)
    assert str(error).startswith(f"config: {path}, line 2, column ")
    assert error.source == str(path)


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert str(error_of(path)).startswith(
        f"config: cannot read the configuration file {path}: No such file or directory"
    )


def test_missing_file_named_by_email_service_config_says_so(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    error = error_of(environ={"EMAIL_SERVICE_CONFIG": str(path)})
    assert "(named by EMAIL_SERVICE_CONFIG)" in str(error)


def test_directory_instead_of_file_is_an_error(tmp_path: Path) -> None:
    assert error_of(tmp_path).source == str(tmp_path)


def test_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[service]\nserver_id = "Zahnärzte"\n'.encode("latin-1"))
    assert "not UTF-8" in str(error_of(path))


# --- the error itself -----------------------------------------------------------------------


def test_error_message_is_one_line_even_for_a_value_with_line_breaks() -> None:
    error = error_of(environ={"EMAIL_SERVICE_HTTP_LISTEN": "host:80\nhost:81"})
    assert len(str(error).splitlines()) == 1


def test_config_error_escapes_line_breaks_in_its_message() -> None:
    assert str(ConfigError("config: a\nb\r\nc")) == "config: a\\nb\\r\\nc"
