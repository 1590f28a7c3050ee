"""Set the two podman settings these machines need in the system containers.conf, idempotently.

- ``runtime = "runc"`` under ``[engine]``: crun (podman's default) refuses hybrid-cgroup kernels.
- ``default_ulimits = []`` under ``[containers]``: the default nofile ulimit makes runc's
  setrlimit fail inside this sandbox.

Standard library only: the bootstrap runs it before the virtualenv exists. A setting the file
already has (any value) is left alone, so an administrator's choice wins; every other line is kept.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

WANTED = {"engine": ("runtime", '"runc"'), "containers": ("default_ulimits", "[]")}


def configure(text: str) -> str:
    config = tomllib.loads(text) if text.strip() else {}
    lines = text.splitlines()
    for table, (key, value) in WANTED.items():
        if key in config.get(table, {}):
            continue
        header = next((i for i, line in enumerate(lines) if re.fullmatch(rf"\s*\[{table}\]\s*", line)), None)
        if header is None:
            lines += ["", f"[{table}]", f"{key} = {value}"]
        else:
            lines.insert(header + 1, f"{key} = {value}")
    result = "\n".join(lines).lstrip("\n") + "\n"
    tomllib.loads(result)  # never write a file podman cannot read
    return result


def main(path: str) -> None:
    conf = Path(path)
    before = conf.read_text() if conf.exists() else ""
    after = configure(before)
    if after != before:
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(after)
        print(f"configured {conf}: runc runtime, no default ulimits")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/etc/containers/containers.conf")
