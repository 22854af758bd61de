"""A container's process on the local platform, when the AWS is the embedded one.

``nexus up`` runs a task definition's ``python -m <module> [args]`` as
``python -m nexus.local.container <module> [args]``: this process's SDK requests to the embedded
AWS are then sent as the Lambda workers' are (``nexus.local.http_headers``, ``signing`` and
``transport``: the same requests and answers, less CPU), and the module runs as ``python -m``
would run it (``__main__``, ``sys.argv``, ``sys.path``). Against LocalStack or AWS, ``nexus up``
runs the command as the task definition gives it.
"""

from __future__ import annotations

import runpy
import sys

from nexus.local import http_headers, signing, transport


def command(task_command: list[str], python: str) -> list[str]:
    """The command that runs ``task_command`` through this module, with ``python``; a command that
    is not ``python -m <module>`` is given back as it is."""
    if len(task_command) >= 3 and task_command[0] in ("python", "python3") and task_command[1] == "-m":
        return [python, "-m", __name__, *task_command[2:]]
    return task_command


def main(argv: list[str]) -> None:
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: python -m nexus.local.container <module> [args ...]")
    http_headers.install()
    signing.install()  # requests carry their credential scope, unsigned (NEXUS_EMBEDDED_AWS only)
    transport.install()  # ... over lean HTTP connections (the same condition)
    sys.argv = list(argv)  # run_module puts the module's file in argv[0], as ``python -m`` does
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
