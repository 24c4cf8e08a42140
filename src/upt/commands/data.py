"""``upt data``: check a dataset, show how to get one, write the synthetic shapes set."""

from __future__ import annotations

import argparse

from upt.data import catalog
from upt.errors import UptError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``upt data {check,info,shapes,toy}``."""
    parser = subparsers.add_parser(
        "data", help="check datasets, show download steps, write the synthetic shapes set",
        description="Dataset tools. Datasets: " + ", ".join(catalog.CATALOG) + ", or folder:PATH for own data.",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True

    check = sub.add_parser("check", help="count, find missing and unreadable images, compare with the official split")
    check.add_argument("--dataset", required=True, help="catalog name or folder:PATH")
    check.add_argument("--data-root", default=None,
                       help=f"folder holding the dataset folders (default: ${catalog.DATA_ROOT_ENV} or ./data)")
    check.add_argument("--no-decode", dest="decode", action="store_false",
                       help="only check that files exist (decoding every image is slow on ImageNet)")
    check.add_argument("--max-listed", type=int, default=20, help="most missing files to list (default 20)")
    check.add_argument("--workers", type=int, default=None, help="decoding threads (default: up to 8)")
    check.set_defaults(func=_check)

    info = sub.add_parser("info", help="what a dataset is, where it goes and how to download it")
    info.add_argument("--dataset", required=True, help="catalog name")
    info.set_defaults(func=_info)

    shapes = sub.add_parser("shapes", help="write the synthetic shapes dataset (offline quick start)")
    shapes.add_argument("--out", required=True, help="output folder, e.g. <data-root>/shapes")
    shapes.add_argument("--per-class", type=int, default=60, help="images per class (default 60)")
    shapes.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    shapes.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    shapes.set_defaults(func=_shapes)

    from upt.toy.tasks import TASKS

    toy = sub.add_parser("toy", help="draw a toy-world task (for the pretrained toy backbone)")
    toy.add_argument("task", choices=sorted(TASKS), help="the attribute that names the classes")
    toy.add_argument("--out", required=True, help="output folder")
    toy.add_argument("--per-class", type=int, default=60, help="images per class (default 60)")
    toy.add_argument("--seed", type=int, default=11, help="scene seed (default 11; pretraining used 0)")
    toy.set_defaults(func=_toy)


def _check(args: argparse.Namespace) -> int:
    from upt.data.check import check_dataset

    report = check_dataset(args.dataset, args.data_root, decode=args.decode, max_listed=args.max_listed,
                           workers=args.workers)
    print(report.format())
    return 0 if report.ok else 1


def _info(args: argparse.Namespace) -> int:
    spec = catalog.get_spec(args.dataset)
    sizes = ", ".join(f"{k} {v}" for k, v in spec.expected.items() if v is not None)
    print(f"{spec.name}: {spec.description}")
    print(f"  folder     <data-root>/{spec.folder}/ holding {spec.layout}")
    print(f"  classes    {spec.num_classes}")
    print(f"  template   {spec.template}")
    print(f"  split      {spec.split_file or 'defined by the layout'} ({sizes})")
    if spec.download.torchvision:
        print(f"  torchvision can download the images: {spec.download.torchvision}(root, download=True)")
    print("how to get it:")
    print("\n".join(f"  {line}" for line in catalog.manual_steps(spec).splitlines()))
    return 0


def _shapes(args: argparse.Namespace) -> int:
    from upt.data.shapes import SHAPES, make_shapes

    if args.per_class < 1 or args.size < 8:
        raise UptError(f"--per-class must be at least 1 and --size at least 8, got {args.per_class} and {args.size}.")
    out = make_shapes(args.out, per_class=args.per_class, seed=args.seed, size=args.size)
    print(f"wrote {args.per_class * len(SHAPES)} images ({', '.join(SHAPES)}) to {out}")
    print(f"use it as --dataset folder:{out}" + (" or, under a data root, --dataset shapes" if out.name == "shapes" else ""))
    return 0


def _toy(args: argparse.Namespace) -> int:
    from upt.toy.tasks import make_task

    if args.per_class < 1:
        raise UptError(f"--per-class must be at least 1, got {args.per_class}.")
    out = make_task(args.out, args.task, per_class=args.per_class, seed=args.seed)
    print(f"wrote the toy task '{args.task}' to {out}; use it as --dataset folder:{out} --backbone toy")
    return 0
