"""``nexus``: the NexusTrade command line.

nexus up [--demo]                       run the whole platform locally
nexus accounts create --name N --cash C create an account (its opening cash a deposit); prints its one-time API key
nexus accounts deposit|withdraw --account A --amount X   move cash (ledger entry, audited, idempotent)
nexus users grant --user U --role ROLE  give a user (id or email) a role: trader, compliance, admin
nexus openapi [--check]                 build the OpenAPI document served at /openapi.json
nexus prices import FILE.csv            load daily closes (date,symbol,close[,open,high,low,volume])
nexus bench local                       orders/s accepted and filled, and POST latency at steady loads
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from decimal import Decimal, InvalidOperation
from types import FrameType
from typing import Annotated

import typer

from nexus import (
    cli_analytics,
    cli_analytics_data,
    cli_engine,
    cli_fix,
    cli_funding,
    cli_identity,
    cli_marketdata,
    cli_money,
    cli_routing,
    cli_routing_admin,
    cli_surveillance,
    platform,
)
from nexus.local import runtime

app = typer.Typer(
    help="NexusTrade: a serverless trading platform, run locally from its template.",
    no_args_is_help=True,
    add_completion=False,
)
accounts_app = typer.Typer(help="Operator commands for trading accounts.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
bench_app = typer.Typer(help="Benchmarks (figures printed; nothing asserted).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# nexus up sets these itself
RUNTIME_PARAMETERS = ("RedisUrlSecretArn", "WebSocketManagementEndpoint", "FixPort", "FixBindAddress")


def _parameter_overrides(tokens: list[str], stage: str) -> tuple[dict[str, str], str]:
    """The overrides given to ``nexus up`` (``Stage=`` sets the stage), checked against the
    template as CloudFormation would: an unknown key or a value the parameter refuses is an
    error naming it (exit 2), before anything starts."""
    from nexus.local.provision import TEMPLATE
    from nexus.local.template import TemplateError, check_parameters, parse_parameter_overrides, read_yaml

    try:
        overrides = parse_parameter_overrides(tokens)
        for key in RUNTIME_PARAMETERS:
            if key in overrides:
                raise TemplateError(f"parameter {key} is set by nexus up itself")
        check_parameters(read_yaml(TEMPLATE), {"Stage": stage, **overrides}, TEMPLATE.name)
    except TemplateError as exc:
        raise typer.BadParameter(str(exc), param_hint="--parameter-overrides") from None
    return overrides, overrides.pop("Stage", stage)


def banner(local: runtime.LocalPlatform) -> list[str]:
    """What ``nexus up`` prints once up: the URLs, and the demo accounts without their keys, which
    are only in the state folder's file readable by this user alone (never on a terminal or a log)."""
    lines = [
        "",
        f"  NexusTrade is up.  API  {local.api_url}   (try: curl {local.api_url}/health)",
        f"                     WS   {local.ws_url}   (Authorization: Bearer <api key>)",
        f"                     AWS  {local.aws_endpoint}   (aws --endpoint-url {local.aws_endpoint} ...)",
        f"                     Redis {runtime._redact_url(local.redis_url)}",
        f"                     FIX  {local.fix_address}   (FIX 4.4; README: Connect over FIX)",
    ]
    if local.demo_accounts:
        names = ", ".join(f"{a['name']} {a['account_id']}" for a in local.demo_accounts)
        lines.append(f"  demo accounts      {names}")
        lines.append(f"                     API keys in {runtime.DEMO_FILE} (mode 0600; README: Trade in two minutes)")
    if local.demo_fix_sessions:
        sessions = ", ".join(str(s["session_id"]) for s in local.demo_fix_sessions)
        lines.append(f"  demo FIX session   {sessions}; password in {runtime.DEMO_FIX_FILE} (mode 0600)")
    lines.append("  Ctrl-C to stop.\n")
    return lines


@app.command(context_settings={"allow_extra_args": True})
def up(
    ctx: typer.Context,
    demo: Annotated[bool, typer.Option(help="Create the demo instruments and accounts.")] = False,
    port: Annotated[int, typer.Option(help="Port of the HTTP API.")] = 8000,
    aws_port: Annotated[int, typer.Option(help="Port of the embedded moto server.")] = 4566,
    ws_port: Annotated[int, typer.Option(help="Port of the WebSocket API.")] = 8001,
    fix_port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the FIX 4.4 gateway.")] = 9878,
    stage: Annotated[str, typer.Option(help="The template's Stage parameter.")] = "local",
    engines: Annotated[int, typer.Option(min=1, max=3, help="Matching engines: one leader, the rest standbys.")] = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    parameter_overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--parameter-overrides",
            help="Template parameters, as sam deploy takes them: Key=Value ... (space-separated) or "
            "ParameterKey=K,ParameterValue=V; e.g. RateLimitOrders=1/2.",
        ),
    ] = None,
) -> None:
    """Run the platform: AWS emulation, Redis, the template's resources, functions, event
    sources, the matching engine and the HTTP API. Ctrl-C stops everything."""
    if ctx.args and not parameter_overrides:
        raise typer.BadParameter(f"unexpected argument {ctx.args[0]!r}")
    overrides, stage = _parameter_overrides([*(parameter_overrides or []), *ctx.args], stage)
    _logging(verbose)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    options = runtime.Options(
        api_port=port, aws_port=aws_port, ws_port=ws_port, stage=stage, demo=demo, engines=engines,
        parameter_overrides=overrides, fix_port=fix_port, market_maker=demo,
    )
    local = runtime.LocalPlatform(options)
    try:
        local.start()
    except Exception as exc:  # whatever failed to start: one line, exit 1
        logging.getLogger("nexus").error("start failed: %s", exc)
        raise typer.Exit(1) from exc
    for line in banner(local):
        typer.echo(line)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        logging.getLogger("nexus").info("stopping")
        local.stop()
        logging.getLogger("nexus").info("stopped")
    # Everything is stopped and joined: leave without the interpreter's teardown of this
    # process's heap (botocore models, the template, the pollers' state), which takes seconds.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@accounts_app.command("create")
@platform.command
def accounts_create(
    name: Annotated[str, typer.Option(help="Account holder's name.")],
    cash: Annotated[str, typer.Option(help="Opening cash in USD, e.g. 100000.00")],
) -> None:
    """Create a trading account and print {"account_id", "api_key"}: the key is shown only now.
    The opening cash is a deposit (``nexus accounts deposit``): a journal entry, audited."""
    from nexus_common.errors import NexusError
    from nexus_portfolio.funding import parse_amount

    from nexus.local.demo import create_account

    try:
        amount = Decimal(cash)
        if amount != 0:
            amount = parse_amount(cash, "cash")
    except (InvalidOperation, NexusError) as exc:
        message = exc.message if isinstance(exc, NexusError) else "cash must be a decimal amount"
        typer.echo(json.dumps({"error": {"code": "invalid_field", "message": message, "field": "cash"}}), err=True)
        raise typer.Exit(2) from exc
    try:
        created = create_account(platform.tables(), name, Decimal("0.00"))
    except ValueError as exc:
        typer.echo(json.dumps({"error": {"code": "invalid_field", "message": str(exc)}}), err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps({"account_id": created["account_id"], "api_key": created["api_key"]}))
    if amount:
        try:
            cli_funding.funding_service(platform.tables()).move(
                created["account_id"], "deposit", amount, "opening-cash", "opening cash", cli_funding.OPERATOR
            )
        except NexusError as exc:  # the account exists (its key is printed above): deposit again
            typer.echo(json.dumps(exc.body()), err=True)
            raise typer.Exit(2) from exc


@bench_app.command("local")
def bench_local(
    pairs: Annotated[int, typer.Option(min=1, help="Crossing buy/sell pairs to send.")] = 1000,
    clients: Annotated[int, typer.Option(min=1, max=64, help="Concurrent HTTP clients.")] = 8,
    paced: Annotated[
        list[float] | None,
        typer.Option(
            min=1, max=500, help="Orders/s of an open-loop latency run (repeat it; default 20, 40, 60; 15 s each)."
        ),
    ] = None,
) -> None:
    """Round trip of one crossing pair, orders per second the local platform accepts and fills,
    POST latency at steady loads, and what each order costs in AWS requests, DynamoDB writes,
    Lambda invocations and CPU."""
    from nexus import bench_local as bench

    rates = tuple(paced) if paced else bench.PACED_RATES
    for line in bench.report(bench.run(pairs=pairs, clients=clients, paced_rates=rates)):
        typer.echo(line)


cli_engine.register(app, bench_app)
cli_fix.register(app, bench_app)
cli_money.register(app, bench_app)
cli_marketdata.register(app, bench_app)
cli_analytics.register(app, bench_app)
cli_analytics_data.register(app, bench_app)
cli_routing.register(app, bench_app)
cli_routing_admin.register(app, bench_app)
cli_surveillance.register(app, bench_app)
cli_identity.register(app)
cli_funding.register(accounts_app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
