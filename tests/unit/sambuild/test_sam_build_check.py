""".ci/check_build.py: a SAM build whose native code or layers do not fit the declared architectures fails.

Each test lays out a small `.aws-sam/build` tree like the one `sam build` writes (a root template,
a nested stack's template beside it, the layer's and functions' folders) with ELF headers for
x86_64 or arm64 in place of compiled extensions.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
EM = {"x86_64": 62, "arm64": 183}


def _load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nexus_ci_check_build", ROOT / ".ci" / "check_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module's annotations through it
    spec.loader.exec_module(module)
    return module


check_build = _load_checker()


def _elf(path: Path, arch: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + (3).to_bytes(2, "little") + EM[arch].to_bytes(2, "little")
    path.write_bytes(header + bytes(44))


def _built(tmp_path: Path, *, layer_arch: str, compatible: str, functions_arch: str, so_arch: str) -> Path:
    """A built tree: CommonLayer at the root, one nested stack whose function uses it via a parameter."""
    build = tmp_path / "build"
    root = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            "CommonLayer": {
                "Type": "AWS::Serverless::LayerVersion",
                "Metadata": {"BuildMethod": "python3.11", "BuildArchitecture": layer_arch},
                "Properties": {"ContentUri": "CommonLayer", "CompatibleArchitectures": [compatible]},
            },
            "EdgeStack": {
                "Type": "AWS::Serverless::Application",
                "Properties": {
                    "Location": "EdgeStack/template.yaml",
                    "Parameters": {"CommonLayerArn": {"Ref": "CommonLayer"}, "Stage": {"Ref": "Stage"}},
                },
            },
        },
    }
    nested = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Globals": {"Function": {"Architectures": [functions_arch], "Layers": [{"Ref": "CommonLayerArn"}]}},
        "Resources": {
            "HealthFunction": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": "HealthFunction"}},
        },
    }
    (build / "EdgeStack" / "HealthFunction").mkdir(parents=True)
    (build / "EdgeStack" / "HealthFunction" / "app.py").write_text("def handler(event, context): ...\n")
    (build / "CommonLayer" / "python").mkdir(parents=True)
    (build / "CommonLayer" / "python" / "mod.py").write_text("")
    _elf(build / "CommonLayer" / "python" / "pkg" / "_native.cpython-311-aarch64-linux-gnu.so", so_arch)
    (build / "template.yaml").write_text(yaml.safe_dump(root))
    (build / "EdgeStack" / "template.yaml").write_text(yaml.safe_dump(nested))
    return build


def test_a_build_that_fits_its_template_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN an arm64 layer with arm64 native code, used by an arm64 function in a nested stack
    build = _built(tmp_path, layer_arch="arm64", compatible="arm64", functions_arch="arm64", so_arch="arm64")
    # WHEN the build is checked
    code = check_build.main(["check_build.py", str(build)])
    # THEN it passes, having looked at the layer, the function and the shared object
    assert code == 0
    assert "1 layer(s), 1 function(s), 1 shared object(s) checked: ok" in capsys.readouterr().out


def test_native_code_for_another_machine_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN an arm64 layer that holds an x86_64 extension (e.g. a wheel built from source on the host)
    build = _built(tmp_path, layer_arch="arm64", compatible="arm64", functions_arch="arm64", so_arch="x86_64")
    # WHEN the build is checked
    code = check_build.main(["check_build.py", str(build)])
    # THEN it fails naming the file and both architectures
    assert code == 1
    so = "python/pkg/_native.cpython-311-aarch64-linux-gnu.so"
    assert f"CommonLayer: {so} is x86_64, the template declares arm64" in capsys.readouterr().err


def test_a_function_on_another_architecture_than_its_layer_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a nested stack whose functions moved to x86_64 while the layer it is passed is built for arm64
    build = _built(tmp_path, layer_arch="arm64", compatible="arm64", functions_arch="x86_64", so_arch="arm64")
    # WHEN the build is checked
    code = check_build.main(["check_build.py", str(build)])
    # THEN it fails naming the function (through the nested stack's parameter) and the layer
    assert code == 1
    err = capsys.readouterr().err
    assert "EdgeStack/HealthFunction: runs on ['x86_64'], its layer CommonLayer is built for arm64" in err


def test_a_layer_built_for_an_architecture_it_does_not_declare_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a layer whose BuildArchitecture is not among its CompatibleArchitectures
    build = _built(tmp_path, layer_arch="arm64", compatible="x86_64", functions_arch="arm64", so_arch="arm64")
    # WHEN the build is checked
    code = check_build.main(["check_build.py", str(build)])
    # THEN it fails saying so
    assert code == 1
    assert "CommonLayer: built for arm64, but CompatibleArchitectures is ['x86_64']" in capsys.readouterr().err


def test_no_build_fails_and_says_to_run_sam_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN no build tree WHEN it is checked THEN it fails and says what to run
    assert check_build.main(["check_build.py", str(tmp_path / "nothing")]) == 1
    assert "run `sam build` first" in capsys.readouterr().err
