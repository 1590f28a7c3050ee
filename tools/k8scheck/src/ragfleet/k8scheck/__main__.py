"""``python -m ragfleet.k8scheck [check|render|tools]``.

- ``check`` (the default): every static check (helm lint, render, schema validation, policy,
  kustomize overlays, drift, hadolint); exits 1 when one fails.
- ``render``: regenerate kubernetes/base/ragfleet.yaml and the golden renders from the chart.
- ``tools``: install helm, kubectl and the CRD validators into .tools/ and print their paths.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ragfleet.k8scheck import golden, render
from ragfleet.k8scheck.checks import run_all
from ragfleet.k8scheck.toolchain import ToolchainError, ensure_all, ensure_helm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ragfleet.k8scheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="check", choices=["check", "render", "tools"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "render":
            helm, _ = ensure_helm()
            render.RENDERED_MANIFEST.parent.mkdir(parents=True, exist_ok=True)
            render.RENDERED_MANIFEST.write_text(render.render_default_manifest(helm))
            sys.stdout.write(f"wrote {render.RENDERED_MANIFEST}\n")
            for path in golden.write_all(helm):
                sys.stdout.write(f"wrote {path}\n")
            return 0
        tools = ensure_all()
        if args.command == "tools":
            sys.stdout.write(f"helm {tools.helm}\nkubectl {tools.kubectl}\nhadolint {tools.hadolint}\n")
            return 0
    except ToolchainError as error:
        sys.stderr.write(f"k8scheck: {error}\n")
        return 2
    report = run_all(tools)
    sys.stdout.write(report.text() + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
