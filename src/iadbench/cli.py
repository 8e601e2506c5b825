"""``iadbench`` command line: the workflow's steps for one-off use outside Snakemake."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from iadbench.errors import IadbenchError


def _demo(args: argparse.Namespace) -> None:
    from iadbench.data.demo import DEMO_CATEGORIES, generate_demo

    summary = generate_demo(
        args.root, categories=tuple(args.categories or DEMO_CATEGORIES), seed=args.seed
    )
    print(json.dumps(summary["categories"], indent=2))


def _manifest(args: argparse.Namespace) -> None:
    from iadbench.pipeline import make_manifest

    frame = make_manifest(
        args.name,
        {"layout": args.layout, "root": args.root, "categories": args.categories},
        args.out,
    )
    print(frame.groupby(["category", "split", "defect_type"]).size().to_string())


def _backbones(_: argparse.Namespace) -> None:
    from iadbench.backbones import REGISTRY

    for name, spec in sorted(REGISTRY.items()):
        print(f"{name:20s} timm={spec.timm_name:28s} layers={list(spec.default_layers)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="iadbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="generate the embedded demo dataset")
    demo.add_argument("root")
    demo.add_argument("--categories", nargs="*")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    man = sub.add_parser("manifest", help="read a dataset layout into a manifest Parquet")
    man.add_argument("root")
    man.add_argument("out")
    man.add_argument("--categories", nargs="+", required=True)
    man.add_argument("--layout", default="mvtec")
    man.add_argument("--name", default="dataset")
    man.set_defaults(func=_manifest)
    sub.add_parser("backbones", help="list registered backbones").set_defaults(func=_backbones)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except IadbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
