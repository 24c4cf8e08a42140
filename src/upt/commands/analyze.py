"""``upt analyze variance``: the UPT paper's Figure 1 statistics of zero-shot CLIP features."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from upt.report.figures import DPI, FORMATS

    p = sub.add_parser("analyze", help="analyses of datasets and results (variance: UPT's Figure 1)")
    what = p.add_subparsers(dest="analysis", metavar="ANALYSIS")
    what.required = True
    v = what.add_parser("variance", help="intra-class image / inter-class text variance per dataset",
                        description="For each dataset: the intra-class variance of zero-shot CLIP image features "
                        "and the inter-class variance of its class-name text features (docs/protocols.md), "
                        "optionally plotted against each method's gain over zero-shot CLIP from a report. A dataset "
                        "that fails is reported (exit status 1) and the others are kept.")
    v.add_argument("--dataset", action="append", required=True,
                   help="catalog name or folder:PATH (repeat, or comma-separate)")
    v.add_argument("--data-root", help="folder holding the benchmark datasets")
    v.add_argument("--backbone", default="ViT-B-16")
    v.add_argument("--pretrained", help="open_clip pretrained tag (default openai; none for built-in backbones)")
    v.add_argument("--device", default="auto")
    v.add_argument("--split", choices=["train", "val", "test"], default="test", help="images to encode (default test)")
    v.add_argument("--per-class", type=int, default=50, help="images per class, 0 = all (default 50)")
    v.add_argument("--seed", type=int, default=1, help="which images per class are drawn")
    v.add_argument("--workers", type=int, default=0, help="data loading processes")
    v.add_argument("--report", metavar="ROOT", help="results folder (a fewshot sweep) whose gains to plot")
    v.add_argument("--shots", type=int, help="shot count of the gains (default: the largest one with results of "
                   "the baseline and another method in --report)")
    v.add_argument("--baseline", default="zeroshot", help="method the gains are measured from (default zeroshot)")
    v.add_argument("--out", default="analysis", help="output folder (default ./analysis)")
    v.add_argument("--formats", default=",".join(FORMATS),
                   help=f"figure file formats, comma-separated (default {','.join(FORMATS)})")
    v.add_argument("--dpi", type=int, default=DPI, help=f"resolution of the PNG figure (default {DPI})")
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from upt.analyze import analyze_variance
    from upt.backbone import BUILTIN_CONFIGS
    from upt.backbone.configs import builtin_default_weights
    from upt.report.collect import short_name
    from upt.report.figures import FigureOptions

    datasets = [d for item in args.dataset for d in item.split(",") if d]
    pretrained = args.pretrained
    if pretrained is None:
        pretrained = builtin_default_weights(args.backbone) if args.backbone in BUILTIN_CONFIGS else "openai"
    elif pretrained.lower() == "none":
        pretrained = None
    options = FigureOptions(tuple(f.strip().lower() for f in args.formats.split(",") if f.strip()), args.dpi)
    result = analyze_variance(datasets, args.out, args.backbone, pretrained, args.data_root, args.device,
                              args.report, args.shots, args.baseline, options, split=args.split,
                              per_class=args.per_class, seed=args.seed, workers=args.workers)
    print(f"{'dataset':20s} {'classes':>7s} {'images':>7s} {'intra-img':>10s} {'inter-txt':>10s}")
    for s in result["stats"]:
        print(f"{short_name(s['dataset'])[:20]:20s} {s['n_classes']:7d} {s['n_images']:7d} "
              f"{s['intra_image_variance']:10.4f} {s['inter_text_variance']:10.4f}")
    if args.report is not None:
        print(f"gains at {result['shots']} shots over {args.baseline}")
    for f in result["failed"]:
        print(f"warning: {f['dataset']} failed and is left out: {f['error']}", file=sys.stderr)
    for path in result["files"]:
        print(f"wrote {path}")
    return 1 if result["failed"] else 0
