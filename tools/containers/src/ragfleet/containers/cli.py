"""``python -m ragfleet.containers`` — the Makefile's image and container-test targets."""

from __future__ import annotations

import argparse
import logging
import sys

from ragfleet.containers import base, engine, images


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ragfleet-containers", description=__doc__)
    parser.add_argument(
        "--engine", default=None, help="docker or podman (default: CONTAINER_ENGINE, or detected)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p_base = sub.add_parser("base-images", help="build the local base images from Debian and the uv wheel")
    p_base.add_argument("--rebuild", action="store_true", help="rebuild images the engine already has")

    p_images = sub.add_parser("images", help="build every ragfleet image from ./Dockerfile")
    p_images.add_argument("--registry", default="ragfleet")
    p_images.add_argument("--tag", default="dev")
    p_images.add_argument("--extra-ca-bundle", default=None, help="PEM file trusted by the build steps")
    p_images.add_argument(
        "--base",
        choices=("local", "upstream", "auto"),
        default="auto",
        help="local: make base-images' bases; upstream: the Dockerfile's (needs a registry); "
        "auto: local when the engine has them",
    )
    p_images.add_argument("--only", nargs="*", default=None, help="services to build (default: all)")

    p_push = sub.add_parser("push", help="push the built images")
    p_push.add_argument("--registry", required=True)
    p_push.add_argument("--tag", required=True)
    p_push.add_argument("--only", nargs="*", default=None, help="images to push (default: all)")

    p_test = sub.add_parser("test", help="run the rendered chart's workloads as containers, then the smoke")
    p_test.add_argument("--registry", default="ragfleet")
    p_test.add_argument("--tag", default="dev")
    p_test.add_argument("--keep", action="store_true", help="leave the containers running (debugging)")

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        eng = engine.detect(args.engine)
        if args.command == "base-images":
            base.build_base_images(eng, rebuild=args.rebuild)
        elif args.command == "images":
            bases = base.BaseImages()
            use_local = args.base == "local" or (
                args.base == "auto" and eng.image_exists(bases.python) and eng.image_exists(bases.uv)
            )
            built = images.build_images(
                eng,
                registry=args.registry,
                tag=args.tag,
                base=bases if use_local else None,
                extra_ca_bundle=args.extra_ca_bundle,
                only=args.only,
            )
            print(images.report(built))
        elif args.command == "push":
            images.push_images(eng, registry=args.registry, tag=args.tag, only=args.only)
        elif args.command == "test":
            from ragfleet.containers import harness

            sys.exit(harness.run(eng, registry=args.registry, tag=args.tag, keep=args.keep))
    except engine.EngineError as exc:
        logging.getLogger("ragfleet.containers").error("%s", exc)
        sys.exit(1)
