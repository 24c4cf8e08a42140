"""``upt cache``: show and free the feature store (frozen-encoder image features kept for reuse)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="show or free the feature store (image features kept for reuse)",
                       description="The feature store keeps image features of frozen image encoders so later runs, "
                                   "seeds and evaluations read them instead of encoding the images again. Default "
                                   "place: $UPT_CACHE/features (else ~/.cache/upt/features); a sweep keeps its own "
                                   "under ROOT/feature-store.")
    actions = p.add_subparsers(dest="cache_command", metavar="ACTION")
    actions.required = True
    for name, help_text in (("ls", "list the entries: backbone, dataset, split, images, size"),
                            ("clear", "remove every entry")):
        a = actions.add_parser(name, help=help_text)
        a.add_argument("--dir", help="the store folder (default: the user cache; a sweep's is ROOT/feature-store)")
        a.set_defaults(func=_ls if name == "ls" else _clear)


def _store(args: argparse.Namespace):
    from upt.engine.features import FeatureStore, default_store

    return FeatureStore(args.dir or default_store())


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _ls(args: argparse.Namespace) -> int:
    store = _store(args)
    entries = store.entries()
    for e in entries:
        if e.get("damaged"):
            print(f"{_mib(e['bytes']):>10}  DAMAGED (recomputed on next use)  {e['path']}")
            continue
        k = e["key"]
        print(f"{_mib(e['bytes']):>10}  {k['backbone']} {k['pretrained']} {k['precision']} {k['device']}  "
              f"{k['dataset']} {k['split']} ({k['n_images']} images, {k['transform']})  {e['created']}")
    total = sum(e["bytes"] for e in entries)
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {_mib(total)} in {store.root}")
    return 0


def _clear(args: argparse.Namespace) -> int:
    store = _store(args)
    files, freed = store.clear()
    print(f"removed {files} file(s), {_mib(freed)} from {store.root}")
    return 0
