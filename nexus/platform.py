"""How an operator command reaches the platform it acts on; the one place that decides it.

Without a flag, a command acts on the running ``nexus up`` (its state file ``.nexus/runtime.json``,
with the emulation's dummy credentials, whatever AWS credentials the shell has), or on the
endpoint ``AWS_ENDPOINT_URL`` names (LocalStack). It never falls back to the default AWS
endpoint and credentials: with neither, it prints one line and exits 2. A deployed stack is
reached only when named: ``--stage S`` (AWS, the default credentials; unless the running
``nexus up`` has that stage), ``--profile P`` (that AWS profile), ``--endpoint-url U``.

``@platform.command`` gives a CLI command those three options, connects before it runs, and
turns an unreachable platform (no endpoint, no credentials, no such stage) into one line and
exit 2 instead of a traceback; the command reads the connection with ``current()`` and the
physical names with ``tables()``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, ParamSpec, TypeVar

import typer

P = ParamSpec("P")
R = TypeVar("R")

NAME_FLAGS: Final = "--endpoint-url URL, --profile NAME or --stage STAGE"
_AUTH_CODES: Final = frozenset({"InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken",
                                "ExpiredTokenException", "SignatureDoesNotMatch", "AccessDenied",
                                "AccessDeniedException", "InvalidSignatureException"})  # fmt: skip

StageOption = Annotated[
    str | None,
    typer.Option("--stage", help="A deployed stack's stage, on AWS with your default credentials "
                 "(or the running nexus up, if it has that stage).", rich_help_panel="Platform"),
]  # fmt: skip
EndpointOption = Annotated[
    str | None,
    typer.Option("--endpoint-url", help="The AWS endpoint of the platform (e.g. LocalStack).",
                 rich_help_panel="Platform"),
]  # fmt: skip
ProfileOption = Annotated[
    str | None, typer.Option("--profile", help="The AWS profile to reach a deployed stack with.",
                             rich_help_panel="Platform"),
]  # fmt: skip


class Unreachable(Exception):
    """The platform cannot be reached; the message is the one line the operator reads."""


@dataclass(frozen=True)
class Target:
    """The platform a command acts on."""

    stage: str
    endpoint_url: str | None  # None: AWS itself
    profile: str | None = None
    region: str | None = None
    api_url: str = ""
    local: bool = False  # the running nexus up: its endpoint with the emulation's credentials
    where: str = ""  # for messages

    @property
    def deployed(self) -> bool:
        return not self.local and self.endpoint_url is None


def running_state() -> tuple[dict[str, Any] | None, str]:
    """The running ``nexus up``'s state, or (None, why there is none)."""
    from nexus.local import runtime

    try:
        state = runtime.read_state()
    except (OSError, ValueError) as exc:
        return None, f"{runtime.STATE_FILE} is unreadable ({exc})"
    if not state:
        return None, f"no {runtime.STATE_FILE}"
    pid = int(state.get("pid") or 0)
    try:
        if pid > 0:
            os.kill(pid, 0)
    except ProcessLookupError:
        return None, f"{runtime.STATE_FILE} is left from nexus up pid {pid}, which is gone"
    except PermissionError:
        pass  # alive, another user's
    return state, ""


def resolve(
    stage: str | None,
    endpoint_url: str | None,
    profile: str | None,
    environ: MutableMapping[str, str],
    state: dict[str, Any] | None,
    why_no_state: str = "",
) -> Target:
    """Which platform the flags, the environment and the running nexus up name (no I/O)."""
    env_endpoint = environ.get("AWS_ENDPOINT_URL") or None
    env_stage = environ.get("NEXUS_STAGE") or None
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None
    if endpoint_url or profile:
        where = f"{endpoint_url} (--endpoint-url)" if endpoint_url else f"AWS, profile {profile}"
        return Target(stage or env_stage or "local", endpoint_url, profile, region, where=where)
    if stage and not (state and state.get("stage") == stage):
        if env_endpoint:
            return Target(stage, env_endpoint, None, region, where=f"{env_endpoint} (AWS_ENDPOINT_URL)")
        return Target(stage, None, None, region, where=f"AWS, stage {stage}")
    if state and (not env_endpoint or env_endpoint == state.get("aws_endpoint")):
        return local_target(state, stage or env_stage)
    if env_endpoint:
        return Target(stage or env_stage or "local", env_endpoint, None, region,
                      where=f"{env_endpoint} (AWS_ENDPOINT_URL)")  # fmt: skip
    raise Unreachable(f"no running platform ({why_no_state or 'no state file'}): start `nexus up`, "
                      f"or name one with {NAME_FLAGS}")  # fmt: skip


def local_target(state: Mapping[str, Any], stage: str | None = None) -> Target:
    """The ``nexus up`` whose state (its ``runtime.json``) is ``state``: its endpoint, region and
    API, with the emulation's credentials; ``stage`` overrides the state's."""
    return Target(
        stage or str(state.get("stage") or "local"),
        str(state["aws_endpoint"]),
        None,
        str(state.get("region") or "us-east-1"),
        api_url=str(state.get("api_url") or ""),
        local=True,
        where=f"the running nexus up ({state['aws_endpoint']}, pid {state.get('pid')})",
    )


def apply(target: Target, environ: MutableMapping[str, str]) -> None:
    """Point this process's AWS clients (boto3, ``nexus_common.aws``) at ``target``."""
    from nexus.local.runtime import LOCAL_CREDENTIALS

    if target.local:  # the emulation's credentials: never the shell's real ones, nor its profile
        environ.update(LOCAL_CREDENTIALS)
        for key in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            environ.pop(key, None)
    if target.endpoint_url:
        environ["AWS_ENDPOINT_URL"] = target.endpoint_url
        if not target.profile:
            for key, value in LOCAL_CREDENTIALS.items():
                environ.setdefault(key, value)
    else:
        environ.pop("AWS_ENDPOINT_URL", None)
    if target.profile:  # that profile's credentials, not the environment's
        environ["AWS_PROFILE"] = target.profile
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            environ.pop(key, None)
    region = target.region or _profile_region(target.profile) or "us-east-1"
    environ["AWS_REGION"] = environ["AWS_DEFAULT_REGION"] = region


def _profile_region(profile: str | None) -> str | None:
    if not profile:
        return None
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        region: str | None = boto3.session.Session(profile_name=profile).region_name
        return region
    except ProfileNotFound:
        return None  # reported by the probe


def reason(exc: BaseException, target: Target) -> str | None:
    """The one line for an exception that means the platform cannot be reached (else None)."""
    from botocore import exceptions as aws

    if isinstance(exc, (aws.NoCredentialsError, aws.PartialCredentialsError)):
        return f"no AWS credentials to reach {target.where}: configure them, or pass --profile"
    if isinstance(exc, aws.ProfileNotFound):
        return f"the AWS profile {target.profile!r} is not configured"
    if isinstance(exc, (aws.ConnectionError, aws.HTTPClientError)):  # refused, timed out, proxy, TLS
        hint = "is `nexus up` running?" if target.local or target.endpoint_url else "check the network"
        return f"cannot reach {target.where}: {hint}"
    if isinstance(exc, aws.ClientError):
        error = exc.response.get("Error", {})
        if error.get("Code") in _AUTH_CODES:
            return f"AWS refused the credentials for {target.where}: {error.get('Code')}"
        if error.get("Code") in ("ResourceNotFoundException", "QueueDoesNotExist"):
            return f"{target.where} has no NexusTrade stage {target.stage!r} ({error.get('Message')})"
    return None


def refused(code: str, message: str, field: str | None = None) -> typer.Exit:
    """A command refused: the HTTP API's error body on standard error, exit status 2."""
    error: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    typer.echo(json.dumps({"error": error}), err=True)
    return typer.Exit(2)


def _fail(line: str) -> typer.Exit:
    typer.echo(f"nexus: {line}", err=True)
    return typer.Exit(2)


@contextlib.contextmanager
def reachable(target: Target) -> Iterator[None]:
    """Turn "the platform cannot be reached" raised inside into one line and exit 2."""
    try:
        yield
    except Exception as exc:  # explained in one line when known, else re-raised
        line = reason(exc, target)
        if line is None:
            raise
        raise _fail(line) from None


def probe(target: Target) -> None:
    """One cheap request (STS GetCallerIdentity, one attempt, short timeouts), so that a missing
    endpoint or credentials show before the command starts, in one line and at once."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=15, retries={"max_attempts": 1})
    with reachable(target):
        session = boto3.session.Session(profile_name=target.profile) if target.profile else boto3.session.Session()
        session.client("sts", endpoint_url=target.endpoint_url, config=config).get_caller_identity()


_current: Target | None = None


def connect(stage: str | None = None, endpoint_url: str | None = None, profile: str | None = None) -> Target:
    """Resolve, point this process at it and check it answers; else one line and exit 2."""
    global _current
    if stage is not None:  # a stage the template refuses would otherwise fail deep in reading it
        from nexus.local.provision import TEMPLATE
        from nexus.local.template import TemplateError, check_parameters, read_yaml

        try:
            check_parameters(read_yaml(TEMPLATE), {"Stage": stage}, "--stage")
        except TemplateError as exc:
            raise _fail(str(exc)) from None
    state, why = running_state()
    try:
        target = resolve(stage, endpoint_url, profile, os.environ, state, why)
    except Unreachable as exc:
        raise _fail(str(exc)) from None
    _point_at(target)
    if not target.local:  # the running nexus up's process was just seen alive; elsewhere, check first
        probe(target)
    _current = target
    return target


def use(target: Target) -> Target:
    """Act on ``target`` from now on, without a request: a ``nexus up`` this process started
    itself (``local_target`` of its state), whose process is known to be alive."""
    global _current
    _point_at(target)
    _current = target
    return target


def _point_at(target: Target) -> None:
    apply(target, os.environ)
    with contextlib.suppress(ImportError):
        from nexus_common.aws import clear_clients

        clear_clients()


def current() -> Target:
    """The platform this command acts on (the running nexus up if nothing was connected)."""
    return _current if _current is not None else connect()


_tables: dict[Target, Callable[[str], str]] = {}


def tables(target: Target | None = None) -> Callable[[str], str]:
    """Physical names of the platform's resources by logical id, read from the template (once
    per platform: reading it costs a request and the template's parse)."""
    from nexus.local.demo import table_names

    target = target or current()
    if target not in _tables:
        with reachable(target):
            _tables[target] = table_names(target.stage)
    return _tables[target]


def command(fn: Callable[P, R]) -> Callable[P, R]:
    """Give a CLI command ``--stage``, ``--endpoint-url`` and ``--profile``; connect before it
    runs; and report an unreachable platform met while it runs in one line (exit 2)."""
    signature = inspect.signature(fn, eval_str=True)  # typer reads __signature__ as it is
    extra = [
        inspect.Parameter("stage", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=StageOption),
        inspect.Parameter("endpoint_url", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=EndpointOption),
        inspect.Parameter("profile", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ProfileOption),
    ]
    clash = {p.name for p in extra} & set(signature.parameters)
    if clash:
        raise TypeError(f"{fn.__name__} already has {clash}")

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        target = connect(kwargs.pop("stage", None), kwargs.pop("endpoint_url", None), kwargs.pop("profile", None))
        with reachable(target):
            return fn(*args, **kwargs)

    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *extra]
    )
    return run
