"""After `sam build`: the built artifacts fit the architectures the template declares.

`sam build` checks that each layer's and function's dependencies resolve, for the one
architecture it builds each of them for. It does not check that the functions run on the
architecture their layers were built for, nor that what it copied holds no native code for
another machine. This script reads the built templates (`.aws-sam/build/template.yaml` and the
nested stacks' templates beside it) and fails, one line per problem, when:

- a layer's build architecture (`Metadata.BuildArchitecture`, x86_64 by default) is not one of
  its `CompatibleArchitectures`;
- a function's architecture (`Architectures`, from the function or the template's Globals,
  x86_64 by default) is not the build architecture of a layer it uses (followed through
  nested stack parameters);
- an ELF shared object in a layer's or a function's artifact is for another machine.

Usage: python .ci/check_build.py [BUILD_DIR]   (default .aws-sam/build; exit 0 ok, 1 problems)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

DEFAULT_ARCH = "x86_64"
# ELF e_machine values of the two Lambda architectures (SAM's names).
ELF_MACHINES = {62: "x86_64", 183: "arm64"}
ELF_MAGIC = b"\x7fELF"


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    shared_objects: int = 0
    functions: int = 0
    layer_archs: dict[str, str] = field(default_factory=dict)


def elf_arch(path: Path) -> str | None:
    """The Lambda architecture an ELF file is for, "other:<n>" for another machine, None if not ELF."""
    with path.open("rb") as f:
        header = f.read(20)
    if len(header) < 20 or not header.startswith(ELF_MAGIC):
        return None
    byteorder: Literal["little", "big"] = "little" if header[5] == 1 else "big"
    machine = int.from_bytes(header[18:20], byteorder)
    return ELF_MACHINES.get(machine, f"other:{machine}")


def check_native_code(artifact: Path, arch: str, owner: str, report: Report) -> None:
    if not artifact.is_dir():
        report.problems.append(f"{owner}: built artifact {artifact} is missing")
        return
    for path in sorted(artifact.rglob("*")):
        if not path.is_file() or not (path.suffix == ".so" or ".so." in path.name):
            continue
        found = elf_arch(path)
        if found is None:
            continue
        report.shared_objects += 1
        if found != arch:
            report.problems.append(f"{owner}: {path.relative_to(artifact)} is {found}, the template declares {arch}")


def _architectures(props: dict[str, Any], globals_: dict[str, Any]) -> list[str]:
    archs = props.get("Architectures", globals_.get("Architectures", [DEFAULT_ARCH]))
    return [str(a) for a in archs]


def _layer(entry: Any, local: dict[str, str], params: dict[str, str]) -> str | None:
    """The qualified name of the built layer a `Layers` entry refers to, else None."""
    if isinstance(entry, dict) and set(entry) == {"Ref"}:
        name = str(entry["Ref"])
        return local.get(name) or params.get(name)
    return None


def check_template(template: Path, params: dict[str, str], report: Report, prefix: str = "") -> None:
    """Check one built template and, through `AWS::Serverless::Application`, its nested stacks.

    ``params`` maps this template's parameter names to the built layers (qualified names, as in
    ``report.layer_archs``) that the parent stack passes in as ``!Ref <Layer>``.
    """
    doc = yaml.safe_load(template.read_text())
    base = template.parent
    resources: dict[str, Any] = doc.get("Resources") or {}
    globals_ = ((doc.get("Globals") or {}).get("Function")) or {}

    local: dict[str, str] = {}  # logical id -> qualified name of the layers built in this template
    for name, res in resources.items():
        if res.get("Type") != "AWS::Serverless::LayerVersion":
            continue
        props, meta = res.get("Properties") or {}, res.get("Metadata") or {}
        arch = str(meta.get("BuildArchitecture", DEFAULT_ARCH))
        owner = f"{prefix}{name}"
        compatible = [str(a) for a in props.get("CompatibleArchitectures", [arch])]
        if arch not in compatible:
            report.problems.append(f"{owner}: built for {arch}, but CompatibleArchitectures is {compatible}")
        local[name] = owner
        report.layer_archs[owner] = arch
        check_native_code(base / str(props.get("ContentUri", "")), arch, owner, report)

    for name, res in resources.items():
        kind, props = res.get("Type"), res.get("Properties") or {}
        owner = f"{prefix}{name}"
        if kind == "AWS::Serverless::Function" and props.get("PackageType", "Zip") == "Zip":
            archs = _architectures(props, globals_)
            report.functions += 1
            for entry in props.get("Layers", globals_.get("Layers", [])):
                layer = _layer(entry, local, params)
                if layer is not None and report.layer_archs[layer] not in archs:
                    report.problems.append(
                        f"{owner}: runs on {archs}, its layer {layer} is built for {report.layer_archs[layer]}"
                    )
            for arch in archs:
                check_native_code(base / str(props.get("CodeUri", "")), arch, owner, report)
        elif kind == "AWS::Serverless::Application":
            location = props.get("Location")
            if not isinstance(location, str):
                continue  # a published application: nothing built here
            passed = {
                param: layer
                for param, value in (props.get("Parameters") or {}).items()
                if (layer := _layer(value, local, params)) is not None
            }
            check_template(base / location, passed, report, prefix=f"{owner}/")


def main(argv: list[str]) -> int:
    build = Path(argv[1] if len(argv) > 1 else ".aws-sam/build")
    template = build / "template.yaml"
    if not template.is_file():
        print(f"check_build: {template} is missing; run `sam build` first", file=sys.stderr)
        return 1
    report = Report()
    check_template(template, {}, report)
    for problem in report.problems:
        print(f"check_build: {problem}", file=sys.stderr)
    print(
        f"check_build: {len(report.layer_archs)} layer(s), {report.functions} function(s), "
        f"{report.shared_objects} shared object(s) checked: "
        + ("ok" if not report.problems else f"{len(report.problems)} problem(s)")
    )
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
