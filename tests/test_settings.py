import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from modfleet.cli import main
from modfleet.settings import Settings, env_names


def test_fields_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODFLEET_BATCH_MAX", "64")
    monkeypatch.setenv("MODFLEET_REDIS_URL", "redis://:hunter2@cache:6379/1")
    settings = Settings()
    assert settings.batch_max == 64
    assert "hunter2" not in repr(settings)
    assert settings.redis_url.get_secret_value().endswith("cache:6379/1")


def test_out_of_range_values_are_refused_with_the_field_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODFLEET_BATCH_MAX", "0")
    with pytest.raises(ValidationError, match="batch_max"):
        Settings()


def test_sasl_without_credentials_is_refused() -> None:
    with pytest.raises(ValidationError, match="kafka_sasl_username"):
        Settings(kafka_security_protocol="SASL_SSL")


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.batch_max = 5  # type: ignore[misc]


def test_env_names_cover_every_field() -> None:
    names = env_names()
    assert "MODFLEET_BROKER_URL" in names
    assert len(names) == len(Settings.model_fields)


def test_bootstrap_servers_strip_the_scheme() -> None:
    settings = Settings(broker_url="kafka://a:9092;kafka://b:9093")
    assert settings.bootstrap_servers == ["a:9092", "b:9093"]


@pytest.mark.parametrize("value", ["quiet-tenant;hush-co", "quiet tenant", "a,b c", "ok,/x"])
def test_an_opted_out_tenant_that_is_no_tenant_name_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("MODFLEET_EXPORT_OPTED_OUT_TENANTS", value)
    bad = next(e.strip() for e in value.split(",") if not e.strip().isalnum())
    with pytest.raises(ValidationError, match="export_opted_out_tenants") as caught:
        Settings()
    assert repr(bad) in str(caught.value)


def test_opted_out_tenants_are_comma_separated_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODFLEET_EXPORT_OPTED_OUT_TENANTS", " quiet-tenant, hush.co ,, t_3 ")
    assert Settings().export_opted_out_tenants == " quiet-tenant, hush.co ,, t_3 "


def test_a_batch_may_inflate_to_64_mib_by_default_and_to_no_less_than_a_post(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modfleet.stream.inflate import DEFAULT_MAX_BATCH_INFLATED_BYTES

    assert Settings().max_batch_inflated_bytes == DEFAULT_MAX_BATCH_INFLATED_BYTES == 64 << 20
    monkeypatch.setenv("MODFLEET_MAX_BATCH_INFLATED_BYTES", str(16 << 20))
    assert Settings().max_batch_inflated_bytes == 16 << 20
    with pytest.raises(ValidationError, match="at least max_post_bytes"):
        Settings(max_post_bytes=32 << 20)
    with pytest.raises(ValidationError, match="max_batch_inflated_bytes"):
        Settings(max_batch_inflated_bytes=1024)


def test_a_misspelt_variable_is_refused_naming_the_setting_it_resembles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pydantic-settings ignores a prefixed name that is no field: a typo in a chart or compose
    # file (MODFLEET_BATCH_MAXX) left the default in force with nothing said.
    monkeypatch.setenv("MODFLEET_BATCH_MAXX", "5")
    monkeypatch.setenv("modfleet_redis_pasword", "secret")
    with pytest.raises(ValidationError, match="not a setting") as refused:
        Settings()
    message = str(refused.value)
    assert "MODFLEET_BATCH_MAXX (did you mean MODFLEET_BATCH_MAX?)" in message
    assert "MODFLEET_REDIS_PASWORD (did you mean MODFLEET_REDIS_PASSWORD?)" in message
    assert "secret" not in message


def test_the_test_scripts_own_variables_are_not_settings_and_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODFLEET_SKIP_VLLM", "1")
    monkeypatch.setenv("MODFLEET_TEST_WORKERS", "0")
    monkeypatch.setenv("MODFLEET_BATCH_MAX", "64")
    assert Settings().batch_max == 64


def test_the_worker_refuses_to_start_on_a_misspelt_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODFLEET_SHUTDOWN_GRACE", "90")
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code == 2, result.output
    assert "MODFLEET_SHUTDOWN_GRACE (did you mean MODFLEET_SHUTDOWN_GRACE_S?)" in result.stderr
