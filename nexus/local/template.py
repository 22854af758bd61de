"""Read a SAM/CloudFormation template (and its nested stacks) the way CloudFormation would.

``load_stack`` parses the YAML (with the short-form intrinsic tags), applies parameter values and
conditions, merges SAM ``Globals`` into functions, and follows every nested stack
(``AWS::Serverless::Application`` with a local ``Location``, or ``AWS::CloudFormation::Stack`` with
a local ``TemplateURL``). Intrinsic functions are resolved lazily by ``Stack.resolve`` against a
``Materializer`` that knows each resource's physical id and attributes, so resources can be created
in dependency order: asking for ``!Ref Queue`` creates the queue first.
"""

from __future__ import annotations

import copy
import functools
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

_SHORT_TAGS = {
    "Ref": "Ref",
    "GetAtt": "Fn::GetAtt",
    "Sub": "Fn::Sub",
    "Join": "Fn::Join",
    "Select": "Fn::Select",
    "Split": "Fn::Split",
    "If": "Fn::If",
    "Equals": "Fn::Equals",
    "Not": "Fn::Not",
    "And": "Fn::And",
    "Or": "Fn::Or",
    "Condition": "Condition",
    "GetAZs": "Fn::GetAZs",
    "Base64": "Fn::Base64",
    "FindInMap": "Fn::FindInMap",
    "ImportValue": "Fn::ImportValue",
}


class TemplateError(Exception):
    """The template cannot be read or resolved."""


class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # libyaml when built
    pass


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = _SHORT_TAGS.get(suffix)
    if name is None:
        raise TemplateError(f"unsupported tag !{suffix}")
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def read_yaml(path: Path) -> dict[str, Any]:
    """The parsed template at ``path``: a fresh copy of the file's parse, read again only when
    the file changes (a test suite loads the same templates hundreds of times)."""
    stat = path.stat()
    return copy.deepcopy(_parsed(path.resolve(), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=64)
def _parsed(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: not a template")
    return data


class Materializer(Protocol):
    """Knows the physical id (``Ref``) and attributes (``GetAtt``) of a resource."""

    def ref(self, stack: Stack, logical_id: str) -> Any: ...

    def get_att(self, stack: Stack, logical_id: str, attribute: str) -> Any: ...


@dataclass
class Resource:
    stack: Stack
    logical_id: str
    type: str
    properties: dict[str, Any]
    metadata: dict[str, Any]

    @property
    def qualified_id(self) -> str:
        return f"{self.stack.path_id}/{self.logical_id}" if self.stack.path_id else self.logical_id

    def resolved(self, key: str, default: Any = None) -> Any:
        """One property, with every intrinsic resolved."""
        if key not in self.properties:
            return default
        return self.stack.resolve(self.properties[key])


@dataclass
class Stack:
    """One template file with its parameter values, and its nested stacks."""

    path: Path
    body: dict[str, Any]
    parameters: dict[str, Any]
    pseudo: dict[str, str]
    materializer: Materializer
    path_id: str = ""
    parent: Stack | None = None
    children: dict[str, Stack] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    conditions: dict[str, bool] = field(default_factory=dict)

    # -- traversal ---------------------------------------------------------------------------

    def walk(self) -> Iterator[Stack]:
        yield self
        for child in self.children.values():
            yield from child.walk()

    def all_resources(self, type_: str | None = None) -> Iterator[Resource]:
        for stack in self.walk():
            for resource in stack.resources.values():
                if type_ is None or resource.type == type_:
                    yield resource

    def find(self, logical_id: str) -> Resource:
        """Find a resource by its logical id anywhere in the stack tree (ids are unique)."""
        found = [r for r in self.all_resources() if r.logical_id == logical_id]
        if len(found) != 1:
            raise TemplateError(f"resource {logical_id!r} found {len(found)} times")
        return found[0]

    def output(self, name: str) -> Any:
        outputs = self.body.get("Outputs", {})
        if name not in outputs:
            raise TemplateError(f"{self.path.name}: no output {name}")
        return self.resolve(outputs[name]["Value"])

    # -- intrinsic functions ------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value if not _is_no_value(v)]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            handler = _INTRINSICS.get(key)
            if handler is not None:
                return handler(self, arg)
        return {k: self.resolve(v) for k, v in value.items() if not _is_no_value(v)}

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            value = self.parameters[name]
            if isinstance(value, _Lazy):
                value = self.parameters[name] = value.get()
            return value
        if name in self.resources:
            return self.materializer.ref(self, name)
        raise TemplateError(f"{self.path.name}: unresolved Ref {name}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id in self.children and attribute.startswith("Outputs."):
            return self.children[logical_id].output(attribute.split(".", 1)[1])
        if logical_id not in self.resources:
            raise TemplateError(f"{self.path.name}: GetAtt of unknown resource {logical_id}")
        return self.materializer.get_att(self, logical_id, attribute)

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            raise TemplateError(f"{self.path.name}: unknown condition {name}")
        return self.conditions[name]


def _is_no_value(value: Any) -> bool:
    return isinstance(value, dict) and value == {"Ref": "AWS::NoValue"}


_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


def _sub(stack: Stack, arg: Any) -> str:
    if isinstance(arg, str):
        template, variables = arg, {}
    else:
        template, variables = arg[0], {k: stack.resolve(v) for k, v in arg[1].items()}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if name in variables:
            return str(variables[name])
        if "." in name:
            logical_id, attribute = name.split(".", 1)
            return str(stack.get_att(logical_id, attribute))
        return str(stack.ref(name))

    return _SUB_VAR.sub(replace, template).replace("${!", "${")


def _get_att(stack: Stack, arg: Any) -> Any:
    if isinstance(arg, str):
        arg = arg.split(".", 1)
    logical_id, attribute = stack.resolve(arg[0]), stack.resolve(arg[1])
    return stack.get_att(logical_id, attribute)


def _if(stack: Stack, arg: Any) -> Any:
    name, when_true, when_false = arg
    chosen = when_true if stack.condition(name) else when_false
    if _is_no_value(chosen):
        return None
    return stack.resolve(chosen)


_INTRINSICS: dict[str, Callable[[Stack, Any], Any]] = {
    "Ref": lambda s, a: s.ref(a),
    "Fn::GetAtt": _get_att,
    "Fn::Sub": _sub,
    "Fn::Join": lambda s, a: str(s.resolve(a[0])).join(str(x) for x in s.resolve(a[1])),
    "Fn::Select": lambda s, a: s.resolve(a[1])[int(s.resolve(a[0]))],
    "Fn::Split": lambda s, a: str(s.resolve(a[1])).split(str(s.resolve(a[0]))),
    "Fn::If": _if,
    "Fn::Equals": lambda s, a: str(s.resolve(a[0])) == str(s.resolve(a[1])),
    "Fn::Not": lambda s, a: not s.resolve(a[0]),
    "Fn::And": lambda s, a: all(s.resolve(x) for x in a),
    "Fn::Or": lambda s, a: any(s.resolve(x) for x in a),
    "Condition": lambda s, a: s.condition(a),
}


# -- loading --------------------------------------------------------------------------------


class _Lazy:
    """A parameter value computed on first use (a nested stack's parameter that refers to a
    resource or to another nested stack's output)."""

    def __init__(self, compute: Callable[[], Any]) -> None:
        self._compute = compute

    def get(self) -> Any:
        return self._compute()


def _coerce(spec: Mapping[str, Any], raw: Any) -> Any:
    if spec.get("Type") == "CommaDelimitedList" and isinstance(raw, str):
        return [part.strip() for part in raw.split(",")] if raw else []
    if spec.get("Type") == "Number":
        return str(raw)
    return raw


def _coerce_lazy(spec: Mapping[str, Any], raw: _Lazy) -> Any:
    return _coerce(spec, raw.get())


def check_parameters(body: Mapping[str, Any], given: Mapping[str, Any], where: str) -> None:
    """What CloudFormation refuses in parameter values: a key the template does not declare, or
    a value outside the parameter's ``AllowedValues``, ``AllowedPattern``, ``MinValue``/``MaxValue``
    or ``MinLength``/``MaxLength``. Values computed later (a nested stack's) are checked by AWS."""
    declared = body.get("Parameters", {}) or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TemplateError(f"{where}: no parameter {', '.join(unknown)} (it declares {', '.join(declared)})")
    for name, raw in given.items():
        if isinstance(raw, _Lazy):
            continue
        spec, value = declared[name], str(raw)
        problem = ""
        if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
            problem = f"is not one of {', '.join(str(v) for v in spec['AllowedValues'])}"
        elif "AllowedPattern" in spec and not re.fullmatch(str(spec["AllowedPattern"]), value):
            problem = f"does not match {spec['AllowedPattern']}"
        elif spec.get("Type") == "Number":
            number = re.fullmatch(r"-?[0-9]{1,18}(\.[0-9]{1,18})?", value)
            if not number:
                problem = "is not a number"
            elif "MinValue" in spec and float(value) < float(spec["MinValue"]):
                problem = f"is below its MinValue {spec['MinValue']}"
            elif "MaxValue" in spec and float(value) > float(spec["MaxValue"]):
                problem = f"is above its MaxValue {spec['MaxValue']}"
        elif not int(spec.get("MinLength", 0)) <= len(value) <= int(spec.get("MaxLength", 4096)):
            problem = "has a length outside MinLength..MaxLength"
        if problem:
            raise TemplateError(f"{where}: parameter {name} value {value!r} {problem}")


def parse_parameter_overrides(tokens: list[str]) -> dict[str, str]:
    """Parameter values as ``sam deploy --parameter-overrides`` takes them: ``Key=Value`` pairs,
    several in one token when quoted together (``"A=1 B=2"``, ``Key='a value'``), or
    ``ParameterKey=K,ParameterValue=V``. The last value given for a key wins."""
    values: dict[str, str] = {}
    for token in tokens:
        if token.startswith("ParameterKey="):
            key, sep, value = token[len("ParameterKey=") :].partition(",ParameterValue=")
            pairs = [(key, value)] if sep else []
        else:
            parts = shlex.split(token) if re.search(r"\s\S+=", token.strip()) else [token]
            pairs = [(part.partition("=")[0], part.partition("=")[2]) for part in parts if "=" in part]
            if len(pairs) != len(parts):
                pairs = []
        if not pairs or not all(re.fullmatch(r"[A-Za-z0-9]{1,255}", key) for key, _ in pairs):
            raise TemplateError(f"parameter override {token!r}: expected Key=Value or ParameterKey=K,ParameterValue=V")
        values.update(pairs)
    return values


def _parameter_values(body: Mapping[str, Any], given: Mapping[str, Any], path: Path) -> dict[str, Any]:
    check_parameters(body, given, path.name)
    values: dict[str, Any] = {}
    for name, spec in body.get("Parameters", {}).items():
        if name in given:
            raw = given[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            raise TemplateError(f"{path.name}: parameter {name} has no value and no default")
        if isinstance(raw, _Lazy):
            values[name] = _Lazy(functools.partial(_coerce_lazy, spec, raw))
        else:
            values[name] = _coerce(spec, raw)
    return values


def _merge_globals(body: dict[str, Any]) -> None:
    """Apply SAM ``Globals`` to the resources of this template (SAM's merge rules, simplified:
    maps merge with the resource winning, lists are concatenated, scalars are overridden)."""
    globals_ = body.get("Globals", {})
    section_for = {
        "AWS::Serverless::Function": "Function",
        "AWS::Serverless::Api": "Api",
        "AWS::Serverless::HttpApi": "HttpApi",
        "AWS::Serverless::SimpleTable": "SimpleTable",
    }
    for resource in body.get("Resources", {}).values():
        section = section_for.get(resource.get("Type", ""))
        if not section or section not in globals_:
            continue
        props = resource.setdefault("Properties", {})
        for key, global_value in globals_[section].items():
            props[key] = _merge_value(copy.deepcopy(global_value), props.get(key))


def _merge_value(global_value: Any, local_value: Any) -> Any:
    if local_value is None:
        return global_value
    if isinstance(global_value, dict) and isinstance(local_value, dict):
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = _merge_value(merged[key], value) if key in merged else value
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return global_value + local_value
    return local_value


def load_stack(
    path: Path,
    materializer: Materializer,
    parameters: Mapping[str, Any] | None = None,
    pseudo: Mapping[str, str] | None = None,
    *,
    _parent: Stack | None = None,
    _path_id: str = "",
) -> Stack:
    """Load a template and, recursively, its nested stacks."""
    path = path.resolve()
    body = read_yaml(path)
    _merge_globals(body)
    stack_name = (pseudo or {}).get("AWS::StackName", "nexustrade")
    own_pseudo = {
        "AWS::Region": "us-east-1",
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        **(pseudo or {}),
        "AWS::StackName": f"{stack_name}-{_path_id.replace('/', '-')}" if _path_id else stack_name,
    }
    stack = Stack(
        path=path,
        body=body,
        parameters=_parameter_values(body, parameters or {}, path),
        pseudo=own_pseudo,
        materializer=materializer,
        path_id=_path_id,
        parent=_parent,
    )
    for name, expression in body.get("Conditions", {}).items():
        stack.conditions[name] = bool(stack.resolve(expression))
    for logical_id, spec in body.get("Resources", {}).items():
        condition = spec.get("Condition")
        if condition and not stack.condition(condition):
            continue
        stack.resources[logical_id] = Resource(
            stack=stack,
            logical_id=logical_id,
            type=spec["Type"],
            properties=spec.get("Properties", {}) or {},
            metadata=spec.get("Metadata", {}) or {},
        )
    for resource in list(stack.resources.values()):
        location = _nested_location(resource)
        if location is None:
            continue
        child_path = (path.parent / location).resolve()
        child_params = {
            k: _Lazy(functools.partial(stack.resolve, v)) for k, v in resource.properties.get("Parameters", {}).items()
        }
        child = load_stack(
            child_path,
            materializer,
            child_params,
            {**own_pseudo, "AWS::StackName": stack_name},
            _parent=stack,
            _path_id=f"{_path_id}/{resource.logical_id}" if _path_id else resource.logical_id,
        )
        stack.children[resource.logical_id] = child
    return stack


def _nested_location(resource: Resource) -> str | None:
    if resource.type == "AWS::Serverless::Application":
        location = resource.properties.get("Location")
        return location if isinstance(location, str) else None
    if resource.type == "AWS::CloudFormation::Stack":
        url = resource.properties.get("TemplateURL")
        if isinstance(url, str) and not url.startswith(("http://", "https://", "s3://")):
            return url
    return None
