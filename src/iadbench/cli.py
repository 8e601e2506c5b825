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

    categories = args.categories or ["all"]
    cfg = {
        "layout": args.layout,
        "root": args.root,
        "categories": "all" if categories == ["all"] else categories,
        "mask_threshold": args.mask_threshold,
        "allow_missing_masks": args.allow_missing_masks,
    }
    frame = make_manifest(args.name, cfg, args.out)
    print(frame.groupby(["category", "split", "defect_type"]).size().to_string())
    for path in frame.attrs.get("orphan_masks", []):
        print(f"warning: mask without an image: {path}", file=sys.stderr)


def _backbones(_: argparse.Namespace) -> None:
    from iadbench.backbones.registry import REGISTRY

    for name, spec in sorted(REGISTRY.items()):
        tag = f".{spec.default_tag}" if spec.default_tag else " (no published weights)"
        print(
            f"{name:22s} {spec.family:5s} {spec.library}:{spec.library_name}{tag}"
            f" layers={list(spec.default_layers)}"
        )


def _kinds(_: argparse.Namespace) -> None:
    from iadbench.methods.kinds import PARAMS

    for name, cls in sorted(PARAMS.items()):
        params = cls()
        needs = params.needs()
        print(
            f"{name:12s} {cls.implementation}\n"
            f"{'':12s} inputs={sorted(needs.inputs)} training={needs.training} maps={needs.maps}"
            f"{' uses=' + ','.join(needs.uses) if needs.uses else ''}\n"
            f"{'':12s} defaults={json.dumps(params.to_dict())}"
        )


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
    man.add_argument("--categories", nargs="+", help="category names, or 'all' (default)")
    man.add_argument("--layout", default="mvtec", help="mvtec, mpdd, btad or visa")
    man.add_argument("--mask-threshold", type=int, default=0)
    man.add_argument("--allow-missing-masks", action="store_true")
    man.add_argument("--name", default="dataset")
    man.set_defaults(func=_manifest)
    sub.add_parser("backbones", help="list registered backbones").set_defaults(func=_backbones)
    sub.add_parser("kinds", help="list method kinds: needs and defaults").set_defaults(func=_kinds)
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
