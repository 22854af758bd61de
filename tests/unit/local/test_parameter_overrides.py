"""`nexus up --parameter-overrides` sets template parameters as `sam deploy` does; an unknown key
or a value the parameter refuses is an error naming it, before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nexus.local.provision import TEMPLATE
from nexus.local.runtime import LocalPlatform, Options
from nexus.local.template import Stack, TemplateError, check_parameters, load_stack, parse_parameter_overrides


class Names:
    """A materializer that names every resource after its logical id (nothing created)."""

    def ref(self, stack: Stack, logical_id: str) -> Any:
        return f"phys-{logical_id}"

    def get_att(self, stack: Stack, logical_id: str, attribute: str) -> Any:
        return f"{logical_id}.{attribute}"


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (["RateLimitOrders=1/2", "MakerFeeBps=0"], {"RateLimitOrders": "1/2", "MakerFeeBps": "0"}),
        (["RateLimitOrders=1/2 MakerFeeBps=0"], {"RateLimitOrders": "1/2", "MakerFeeBps": "0"}),
        (["ParameterKey=EngineSubnetIds,ParameterValue=subnet-1,subnet-2"], {"EngineSubnetIds": "subnet-1,subnet-2"}),
        (["EngineImageUri='my image' Stage=qa"], {"EngineImageUri": "my image", "Stage": "qa"}),
        (["EngineImageUri=repo/image:tag=1"], {"EngineImageUri": "repo/image:tag=1"}),
    ],
    ids=["pairs", "quoted-together", "parameter-key-form", "quoted-value", "equals-in-value"],
)
def test_overrides_are_read_in_sams_syntax(tokens: list[str], expected: dict[str, str]) -> None:
    # GIVEN overrides as one would pass them to sam deploy WHEN read THEN each key has its value
    assert parse_parameter_overrides(tokens) == expected


@pytest.mark.parametrize("token", ["RateLimitOrders", "=1/2", "ParameterKey=RateLimitOrders", "Rate-Limit=1"])
def test_a_malformed_override_is_refused(token: str) -> None:
    with pytest.raises(TemplateError, match="expected Key=Value"):
        parse_parameter_overrides([token])


def test_an_unknown_key_is_an_error_naming_it() -> None:
    # GIVEN the project's template WHEN a key it does not declare is given THEN the error names it
    with pytest.raises(TemplateError, match="no parameter RateLimitOrderz"):
        check_parameters({"Parameters": {"RateLimitOrders": {"Type": "String"}}}, {"RateLimitOrderz": "1/2"}, "t")
    with pytest.raises(TemplateError, match="no parameter RateLimitOrderz"):
        load_stack(TEMPLATE, Names(), {"RateLimitOrderz": "1/2"})


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [("RateLimitOrders", "5", "does not match"), ("CommandShardCount", "0", "is below its MinValue"),
     ("CommandShardCount", "two", "is not a number")],
)
def test_a_value_the_parameter_refuses_is_an_error(key: str, value: str, problem: str) -> None:
    with pytest.raises(TemplateError, match=f"parameter {key} value '{value}' {problem}"):
        load_stack(TEMPLATE, Names(), {key: value})


def test_an_override_reaches_the_functions_that_use_the_parameter() -> None:
    # GIVEN a low order-entry rate limit WHEN the template is read with it
    stack = load_stack(TEMPLATE, Names(), {"Stage": "qa", "RateLimitOrders": "1/2"})
    # THEN the authorizer, which enforces it, gets it in its environment
    authorizer = stack.find("AuthorizerFunction")
    variables = authorizer.properties["Environment"]["Variables"]
    assert authorizer.stack.resolve(variables["RATE_LIMIT_ORDERS"]) == "1/2"


def test_the_runtime_passes_the_overrides_and_keeps_what_it_sets_itself() -> None:
    # GIVEN nexus up options with an override
    platform = LocalPlatform(Options(stage="qa", parameter_overrides={"RateLimitOrders": "1/2"}, write_state=False))
    platform.ws_management_url = "http://127.0.0.1:9"
    # WHEN it works out the template's parameters
    parameters = platform.template_parameters("arn:aws:secretsmanager:us-east-1:123456789012:secret:r")
    # THEN the override is there beside the stage and the runtime's own values
    assert parameters == {"RateLimitOrders": "1/2", "Stage": "qa", "WebSocketManagementEndpoint": "http://127.0.0.1:9",
                          "RedisUrlSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:r",
                          "FixBindAddress": "127.0.0.1"}
    # AND the FIX gateway's port once the runtime has one (nexus up --fix-port, or a free port)
    platform.options.fix_port = 9999
    assert platform.template_parameters("arn:x")["FixPort"] == "9999"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [(["RateLimitOrderz=1/2"], "RateLimitOrderz"), (["RateLimitOrders=1/2", "Nope=1"], "Nope"),
     (["RedisUrlSecretArn=arn:x"], "RedisUrlSecretArn")],
)
def test_nexus_up_refuses_a_bad_override_before_starting_anything(
    tmp_path: Path, overrides: list[str], named: str
) -> None:
    # GIVEN no platform, and overrides with a key the template does not declare (or nexus up sets)
    env = {**os.environ, "NEXUS_STATE_DIR": str(tmp_path), "COLUMNS": "200"}
    # WHEN `nexus up --parameter-overrides ...` runs
    done = subprocess.run([sys.executable, "-m", "nexus.cli", "up", "--aws-port", "9", "--parameter-overrides",
                           *overrides], env=env, capture_output=True, text=True, timeout=120)
    # THEN it exits 2 naming the key, having started nothing (no state file, no port probed)
    assert done.returncode == 2
    assert named in done.stderr and "--parameter-overrides" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runtime.json").exists()
