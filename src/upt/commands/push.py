"""``upt push``: upload a run folder to the Hugging Face Hub with a generated model card."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="upload a run folder to the Hugging Face Hub (model card included)",
                       description="Upload prompt.safetensors, upt.json, config.yaml and results.json of a run with "
                                   "a generated README.md model card to a Hub model repository (created when "
                                   "missing). Load it back with --run hf-hub:USER/NAME. Needs a token "
                                   "(`hf auth login` or HF_TOKEN) and the network.")
    p.add_argument("--run", required=True, help="run folder written by upt train")
    p.add_argument("--repo", required=True, metavar="USER/NAME", help="Hub model repository to upload to")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--license", default="mit", help="license of the prompts in the model card (default mit)")
    p.add_argument("--dry-run", metavar="FOLDER",
                   help="write the files that would be uploaded (model card included) to FOLDER; upload nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from upt.hub import HUB_PREFIX, build_upload_folder, push_run

    if args.dry_run:
        files = build_upload_folder(args.run, args.dry_run, args.repo, args.license)
        print(f"wrote {', '.join(files)} to {args.dry_run}; nothing uploaded")
        return 0
    url = push_run(args.run, args.repo, private=args.private, license=args.license)
    print(f"pushed {args.run} -> {url} · load it with --run {HUB_PREFIX}{args.repo}")
    return 0
