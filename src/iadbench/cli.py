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


def _kinds(args: argparse.Namespace) -> None:
    from iadbench.methods.kinds import KINDS, params_class

    if args.update_docs:
        from iadbench.docs import update_docs

        for path in update_docs(args.update_docs):
            print(f"updated {path}")
        return
    names = args.kind or list(KINDS)
    classes = {name: params_class(name) for name in names}
    if args.markdown:
        print("\n".join(cls.markdown(name) for name, cls in classes.items()), end="")
        return
    for name, cls in classes.items():
        params = cls()
        needs = params.needs()
        print(
            f"{name:12s} {cls.implementation}\n"
            f"{'':12s} {cls.summary()}\n"
            f"{'':12s} inputs={sorted(needs.inputs)} training={needs.training} maps={needs.maps}"
            f"{' uses=' + ','.join(needs.uses) if needs.uses else ''}\n"
            f"{'':12s} entry keys: {cls.entry_line()}\n"
            f"{'':12s} defaults={json.dumps(params.to_dict())}"
        )
        for row in cls.rows():
            default = f" = {row['default']}" if row["default"] else ""
            print(f"{'':14s}{row['name']}{default}  [{row['allowed']}]")
            print(f"{'':16s}{row['description']}")


def _init(args: argparse.Namespace) -> None:
    from iadbench.init_config import build_config

    result = build_config(
        args.root,
        layout=args.layout,
        methods=[m for m in (args.methods or "").split(",") if m] or None,
        name=args.name,
        categories=[c for c in (args.categories or "").split(",") if c] or None,
        backbone=args.backbone,
        command="iadbench init " + " ".join(sys.argv[2:]),
    )
    print(result.inventory, file=sys.stderr)
    sys.stdout.write(result.yaml)


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
    init = sub.add_parser(
        "init",
        help="detect a dataset folder's layout and write a config for it (YAML on stdout)",
        description="Inspect a dataset folder, list its categories (stderr) and print a "
        "complete config for it (stdout): iadbench init --root /data/mvtec_ad > my.yaml",
    )
    init.add_argument("--root", required=True, help="the dataset folder")
    init.add_argument("--layout", default="auto", help="auto, mvtec, mpdd, btad, visa or weld")
    init.add_argument("--methods", help="comma-separated kinds (default patchcore)")
    init.add_argument("--name", help="the dataset's name in the config (default from the layout)")
    init.add_argument("--categories", help="comma-separated subset of the categories found")
    init.add_argument("--backbone", default="efficientnet_lite0", help="feature backbone model")
    init.set_defaults(func=_init)
    sub.add_parser("backbones", help="list registered backbones").set_defaults(func=_backbones)
    kinds = sub.add_parser(
        "kinds", help="list method kinds: needs, parameters with defaults, ranges, descriptions"
    )
    kinds.add_argument(
        "--kind", action="append", help="only this kind (a name or 'module:Class'; repeatable)"
    )
    kinds.add_argument(
        "--markdown", action="store_true", help="one Markdown parameter table per kind (docs)"
    )
    kinds.add_argument(
        "--update-docs",
        metavar="DIR",
        help="rewrite the <!-- kinds:NAME --> regions of every *.md under DIR (e.g. docs)",
    )
    kinds.set_defaults(func=_kinds)
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
