"""What the local runtime runs, read from the resolved template: functions, their event sources,
APIs and their routes, and container services."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus.local.template import Resource, Stack, TemplateError


@dataclass(frozen=True)
class EventSource:
    function: str  # logical id of the function
    name: str  # the event's key under Events
    type: str  # Kinesis | DynamoDB | SQS | Schedule | Api
    properties: dict[str, Any]


@dataclass(frozen=True)
class Route:
    function: str
    api: str  # logical id of the API
    method: str  # GET, POST, ... or ANY
    path: str  # /v1/orders/{order_id}
    authorizer: str | None  # authorizer name, or None for a public route


@dataclass(frozen=True)
class Authorizer:
    name: str
    function: str  # logical id of the authorizer function
    payload_type: str  # REQUEST | TOKEN
    identity_headers: tuple[str, ...]
    reauthorize_every: int


@dataclass(frozen=True)
class GatewayResponse:
    status: int
    body: str | None
    headers: dict[str, str]


@dataclass(frozen=True)
class Api:
    logical_id: str
    stage: str
    authorizers: dict[str, Authorizer]
    gateway_responses: dict[str, GatewayResponse]


@dataclass(frozen=True)
class Function:
    logical_id: str
    name: str
    code_uri: Path
    handler: str
    layers: tuple[Path, ...]
    environment: dict[str, str]
    timeout: int
    memory: int
    events: tuple[EventSource, ...]
    reserved_concurrency: int | None


@dataclass(frozen=True)
class Container:
    service: str  # logical id of the ECS service
    name: str
    context: Path  # the image's build context
    python_path: tuple[Path, ...]  # local folders that the Dockerfile copies onto the image's PYTHONPATH
    command: tuple[str, ...]
    environment: dict[str, str]
    secrets: dict[str, str]  # env var -> secret ARN (ValueFrom)
    desired_count: int
    stop_timeout: int


@dataclass(frozen=True)
class WebSocketAuthorizer:
    function: str  # logical id of the authorizer function
    identity_sources: tuple[str, ...]  # route.request.header.X / route.request.querystring.Y


@dataclass(frozen=True)
class WebSocketApi:
    """An API Gateway v2 ``WEBSOCKET`` API: its routes (route key -> function) and ``$connect``'s
    authorizer."""

    logical_id: str
    api_id: str
    stage: str
    route_selection: str  # $request.body.<field>
    routes: dict[str, str]  # route key -> function logical id
    authorizer: WebSocketAuthorizer | None


@dataclass
class Platform:
    """Everything the template declares that the local runtime runs."""

    stack: Stack
    functions: dict[str, Function] = field(default_factory=dict)
    apis: dict[str, Api] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    containers: list[Container] = field(default_factory=list)
    websocket_apis: dict[str, WebSocketApi] = field(default_factory=dict)

    def event_sources(self, *types: str) -> list[EventSource]:
        return [e for f in self.functions.values() for e in f.events if not types or e.type in types]


def _path(resource: Resource, value: str) -> Path:
    return (resource.stack.path.parent / value).resolve()


def _layer_paths(stack: Stack) -> dict[str, Path]:
    """Layer ARN (as Ref gives it) -> its content folder, for every layer in the tree."""
    paths: dict[str, Path] = {}
    for layer in stack.all_resources("AWS::Serverless::LayerVersion"):
        arn = layer.stack.ref(layer.logical_id)
        paths[str(arn)] = _path(layer, str(layer.resolved("ContentUri")))
    return paths


def build_platform(root: Stack) -> Platform:
    platform = Platform(stack=root)
    layers = _layer_paths(root)
    for resource in root.all_resources("AWS::Serverless::Function"):
        fn = _function(resource, layers)
        platform.functions[fn.logical_id] = fn
    for resource in root.all_resources("AWS::Serverless::Api"):
        api = _api(resource, platform.functions)
        platform.apis[api.logical_id] = api
    for fn in platform.functions.values():
        for event in fn.events:
            if event.type == "Api":
                platform.routes.append(_route(fn, event, platform.apis))
    for resource in root.all_resources("AWS::ECS::Service"):
        platform.containers.extend(_containers(resource))
    for resource in root.all_resources("AWS::ApiGatewayV2::Api"):
        if str(resource.resolved("ProtocolType", "")).upper() == "WEBSOCKET":
            ws = _websocket_api(resource, root)
            platform.websocket_apis[ws.logical_id] = ws
    return platform


_LAMBDA_URI = re.compile(r"/functions/(arn:[^/]+)/invocations$")


def _function_of_uri(root: Stack, uri: Any, what: str) -> str:
    """The logical id of the function a Lambda integration/authorizer URI invokes."""
    found = _LAMBDA_URI.search(str(uri))
    if not found:
        raise TemplateError(f"{what}: not a Lambda invocation URI: {uri}")
    for fn in root.all_resources("AWS::Serverless::Function"):
        if str(fn.stack.get_att(fn.logical_id, "Arn")) == found.group(1):
            return fn.logical_id
    raise TemplateError(f"{what}: function {found.group(1)} is not declared in the template")


def _refers_to(value: Any, logical_id: str) -> bool:
    return isinstance(value, dict) and value.get("Ref") == logical_id


def _websocket_api(api: Resource, root: Stack) -> WebSocketApi:
    stack = api.stack
    siblings = [r for r in stack.resources.values() if _refers_to(r.properties.get("ApiId"), api.logical_id)]
    integrations = {
        str(stack.ref(r.logical_id)): _function_of_uri(root, r.resolved("IntegrationUri"), r.logical_id)
        for r in siblings
        if r.type == "AWS::ApiGatewayV2::Integration"
    }
    routes: dict[str, str] = {}
    authorizer: WebSocketAuthorizer | None = None
    for route in (r for r in siblings if r.type == "AWS::ApiGatewayV2::Route"):
        target = str(route.resolved("Target", ""))
        integration = target.removeprefix("integrations/")
        if integration not in integrations:
            raise TemplateError(f"{route.logical_id}: target {target} is not an integration of {api.logical_id}")
        key = str(route.resolved("RouteKey"))
        routes[key] = integrations[integration]
        auth_ref = route.properties.get("AuthorizerId")
        if str(route.resolved("AuthorizationType", "NONE")) == "CUSTOM" and isinstance(auth_ref, dict):
            auth = stack.resources[str(auth_ref["Ref"])]
            authorizer = WebSocketAuthorizer(
                function=_function_of_uri(root, auth.resolved("AuthorizerUri"), auth.logical_id),
                identity_sources=tuple(str(s) for s in auth.resolved("IdentitySource") or ()),
            )
    stages = [r for r in siblings if r.type == "AWS::ApiGatewayV2::Stage"]
    if len(stages) != 1:
        raise TemplateError(f"{api.logical_id}: expected one AWS::ApiGatewayV2::Stage, found {len(stages)}")
    return WebSocketApi(
        logical_id=api.logical_id,
        api_id=str(stack.ref(api.logical_id)),
        stage=str(stages[0].resolved("StageName")),
        route_selection=str(api.resolved("RouteSelectionExpression", "$request.body.action")),
        routes=routes,
        authorizer=authorizer,
    )


def _function(resource: Resource, layers: dict[str, Path]) -> Function:
    if resource.resolved("PackageType", "Zip") != "Zip":
        raise TemplateError(f"{resource.logical_id}: only Zip functions run locally")
    env = (resource.resolved("Environment") or {}).get("Variables", {}) or {}
    layer_paths = []
    for arn in resource.resolved("Layers") or []:
        if str(arn) not in layers:
            raise TemplateError(f"{resource.logical_id}: layer {arn} is not declared in the template")
        layer_paths.append(layers[str(arn)])
    events = tuple(
        EventSource(
            function=resource.logical_id,
            name=name,
            type=spec["Type"],
            properties=resource.stack.resolve(spec.get("Properties", {})),
        )
        for name, spec in (resource.properties.get("Events") or {}).items()
    )
    concurrency = resource.resolved("ReservedConcurrentExecutions")
    return Function(
        logical_id=resource.logical_id,
        name=str(resource.stack.ref(resource.logical_id)),
        code_uri=_path(resource, str(resource.resolved("CodeUri"))),
        handler=str(resource.resolved("Handler")),
        layers=tuple(layer_paths),
        environment={k: str(v) for k, v in env.items()},
        timeout=int(resource.resolved("Timeout", 3)),
        memory=int(resource.resolved("MemorySize", 128)),
        events=events,
        reserved_concurrency=int(concurrency) if concurrency is not None else None,
    )


def _logical_id_of_arn_ref(resource: Resource, value: Any) -> str:
    """The logical id a `!GetAtt X.Arn` points at, read from the unresolved property."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else str(target).split(".")[0])
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    raise TemplateError(f"{resource.logical_id}: authorizer FunctionArn must be !GetAtt Fn.Arn")


def _api(resource: Resource, functions: dict[str, Function]) -> Api:
    auth = resource.properties.get("Auth") or {}
    authorizers: dict[str, Authorizer] = {}
    for name, spec in (auth.get("Authorizers") or {}).items():
        function_id = _logical_id_of_arn_ref(resource, spec["FunctionArn"])
        if function_id not in functions:
            raise TemplateError(f"authorizer {name}: function {function_id} not in the template")
        identity = resource.stack.resolve(spec.get("Identity") or {})
        authorizers[name] = Authorizer(
            name=name,
            function=function_id,
            payload_type=str(resource.stack.resolve(spec.get("FunctionPayloadType", "TOKEN"))),
            identity_headers=tuple(identity.get("Headers") or (["Authorization"])),
            reauthorize_every=int(identity.get("ReauthorizeEvery", 300)),
        )
    responses: dict[str, GatewayResponse] = {}
    for kind, spec in (resource.resolved("GatewayResponses") or {}).items():
        templates = spec.get("ResponseTemplates") or {}
        headers = ((spec.get("ResponseParameters") or {}).get("Headers")) or {}
        responses[kind] = GatewayResponse(
            status=int(spec.get("StatusCode", 0) or 0),
            body=templates.get("application/json"),
            headers={k: str(v).strip("'") for k, v in headers.items()},
        )
    return Api(
        logical_id=resource.logical_id,
        stage=str(resource.resolved("StageName", "Prod")),
        authorizers=authorizers,
        gateway_responses=responses,
    )


def _route(fn: Function, event: EventSource, apis: dict[str, Api]) -> Route:
    props = event.properties
    api_id = props.get("RestApiId")
    candidates = [a for a in apis.values() if api_id in (None, a.logical_id, f"local-{a.logical_id.lower()}")]
    if len(candidates) != 1:
        raise TemplateError(f"{fn.logical_id}.{event.name}: cannot tell which API it belongs to")
    api = candidates[0]
    auth = props.get("Auth") or {}
    default = next(iter(api.authorizers), None)
    authorizer = auth.get("Authorizer", default)
    if authorizer in ("NONE", None):
        authorizer = None
    elif authorizer not in api.authorizers:
        raise TemplateError(f"{fn.logical_id}.{event.name}: unknown authorizer {authorizer}")
    return Route(
        function=fn.logical_id,
        api=api.logical_id,
        method=str(props["Method"]).upper(),
        path=str(props["Path"]),
        authorizer=authorizer,
    )


def _containers(service: Resource) -> list[Container]:
    task_ref = service.properties.get("TaskDefinition")
    if not (isinstance(task_ref, dict) and "Ref" in task_ref):
        raise TemplateError(f"{service.logical_id}: TaskDefinition must be a Ref to the template's task")
    task = service.stack.resources[task_ref["Ref"]]
    context = task.metadata.get("DockerContext")
    if not context:
        raise TemplateError(f"{task.logical_id}: Metadata.DockerContext names the code to run locally")
    context_path = _path(task, str(context))
    dockerfile = context_path / str(task.metadata.get("Dockerfile", "Dockerfile"))
    python_path = _image_python_path(context_path, dockerfile)
    containers = []
    for spec in task.resolved("ContainerDefinitions") or []:
        containers.append(
            Container(
                service=service.logical_id,
                name=str(spec["Name"]),
                context=context_path,
                python_path=python_path,
                command=tuple(str(c) for c in spec.get("Command") or ()),
                environment={e["Name"]: str(e["Value"]) for e in spec.get("Environment") or []},
                secrets={s["Name"]: str(s["ValueFrom"]) for s in spec.get("Secrets") or []},
                desired_count=int(service.resolved("DesiredCount", 1)),
                stop_timeout=int(spec.get("StopTimeout", 10)),
            )
        )
    return containers


def _image_python_path(context: Path, dockerfile: Path) -> tuple[Path, ...]:
    """The local folders that hold, side by side, the packages the Dockerfile copies onto the
    image's ``PYTHONPATH``: ``COPY layers/common/nexus_common /app/nexus_common`` with
    ``PYTHONPATH=/app`` means ``layers/common`` locally. So the image's build instructions, not a
    list in Python, say what code a container runs."""
    if not dockerfile.is_file():
        raise TemplateError(f"{dockerfile}: no Dockerfile")
    lines = dockerfile.read_text().splitlines()
    image_path: list[str] = []
    for line in lines:
        found = re.search(r"PYTHONPATH=(\S+)", line) if line.strip().startswith("ENV") else None
        if found:
            image_path = found.group(1).split(":")
    folders: list[Path] = []
    stage = ""
    staged: dict[tuple[str, str], str] = {}  # (stage, path in that stage) -> the local source copied there
    for line in lines:
        parts = line.split()
        if parts and parts[0] == "FROM":
            stage = parts[-1] if len(parts) >= 4 and parts[-2].upper() == "AS" else ""
            continue
        options = [p for p in parts[1:] if p.startswith("--")]
        args = [p for p in parts[1:] if not p.startswith("--")]
        if not parts or parts[0] != "COPY" or len(args) != 2:
            continue
        source, target = args[0].rstrip("/"), args[1].rstrip("/")
        from_stage = next((o.split("=", 1)[1] for o in options if o.startswith("--from=")), None)
        if from_stage is not None:
            # COPY --from=build /build/pkg /app/pkg: the package a builder stage copied (and
            # compiled) comes from the local folder that stage copied it from.
            if (from_stage, source) not in staged:
                continue
            source = staged[(from_stage, source)]
        staged[(stage, target)] = source
        if any(target.rsplit("/", 1)[0] == entry.rstrip("/") for entry in image_path):
            folder = (context / source).parent.resolve()
            if folder not in folders:
                folders.append(folder)
    if not folders:
        raise TemplateError(f"{dockerfile}: copies no package onto PYTHONPATH")
    return tuple(folders)
