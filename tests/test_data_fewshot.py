"""Few-shot subsets are pure functions of (labels, K, seed); base/new split follows CoOp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import upt
from datatools import build_mini
from upt.data import (
    DatasetSplits,
    Sample,
    base_new_split,
    fewshot_from_manifest,
    fewshot_indices,
    fewshot_splits,
    load_dataset,
)
from upt.errors import UptError

LABELS = [i % 5 for i in range(100)] + [5, 5]  # classes 0-4: 20 images each; class 5: 2 images


def test_k_per_class_and_all_of_a_small_class():
    chosen = fewshot_indices(LABELS, 4, seed=1)
    counts = Counter(LABELS[i] for i in chosen)
    assert counts == {0: 4, 1: 4, 2: 4, 3: 4, 4: 4, 5: 2}
    assert chosen == sorted(chosen) and len(set(chosen)) == len(chosen)


def test_seeds_differ_and_shots_are_nested():
    assert fewshot_indices(LABELS, 4, seed=1) != fewshot_indices(LABELS, 4, seed=2)
    for seed in (1, 2, 3):
        sets = [set(fewshot_indices(LABELS, k, seed)) for k in (1, 2, 4, 8, 16)]
        assert all(a <= b for a, b in zip(sets, sets[1:], strict=False))


def test_pinned_values():
    # Guards the algorithm itself: changing it silently changes every published few-shot subset.
    assert fewshot_indices([0] * 10 + [1] * 10, 2, seed=1) == [1, 2, 15, 17]


def test_identical_across_processes_and_hash_seeds():
    labels = [(i * 7) % 13 for i in range(400)]
    script = f"import json; from upt.data import fewshot_indices; print(json.dumps([fewshot_indices({labels}, k, s) for k, s in [(1, 1), (4, 2), (16, 3)]]))"
    outputs = []
    for hash_seed in ("0", "12345"):
        src = str(Path(upt.__file__).resolve().parents[1])  # works without an installed package too
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        outputs.append(json.loads(out.stdout))
    assert outputs[0] == outputs[1]
    assert outputs[0] == [fewshot_indices(labels, k, s) for k, s in [(1, 1), (4, 2), (16, 3)]]


def test_independent_of_other_classes():
    # Adding a class (or images of another class) does not move the choice inside a class.
    a = fewshot_indices([0] * 30, 4, seed=3)
    b = fewshot_indices([1] * 7 + [0] * 30, 4, seed=3)
    assert [i + 7 for i in a] == [i for i in b if i >= 7]


def test_fewshot_splits_train_val_test(tmp_path):
    build_mini("dtd", tmp_path)  # 3 classes: train 2, val 1, test 1 per class
    splits = load_dataset("dtd", tmp_path)
    few = fewshot_splits(splits, 1, seed=1)
    assert Counter(s.label for s in few.train) == {0: 1, 1: 1, 2: 1}
    assert set(few.train) < set(splits.train) and few.val == splits.val
    assert few.test == splits.test
    record = few.info["fewshot"]
    assert record["shots"] == 1 and record["seed"] == 1 and record["val_shots"] == 1
    assert all(not os.path.isabs(p) and p.startswith("images/") for p in record["train"])
    assert splits.info.get("fewshot") is None  # the input is not modified


def test_val_is_min_k_4_and_short_classes_recorded():
    train = [Sample(f"/d/{y}/{i}.jpg", y) for y in range(3) for i in range(20 if y else 3)]
    val = [Sample(f"/d/v{y}/{i}.jpg", y) for y in range(3) for i in range(10)]
    splits = DatasetSplits("toy", ["a", "b", "c"], "{}", train, val, [], {"dataset_dir": "/d"})
    few = fewshot_splits(splits, 16, seed=2)
    assert Counter(s.label for s in few.train) == {0: 3, 1: 16, 2: 16}
    assert Counter(s.label for s in few.val) == {0: 4, 1: 4, 2: 4}
    assert few.info["fewshot"]["short_classes"] == {"a": 3}
    again = fewshot_from_manifest(splits, json.loads(json.dumps(few.info["fewshot"])))
    assert again.train == few.train and again.val == few.val
    changed = splits.replace(train=train[1:])
    with pytest.raises(UptError, match="Saved few-shot train image 0/0.jpg .* is not in the train split of toy"):
        fewshot_from_manifest(changed, few.info["fewshot"])


@pytest.mark.parametrize(("n", "base"), [(5, 3), (4, 2), (1, 1)])
def test_base_new_split(n, base):
    names = [f"c{i}" for i in range(n)]
    samples = [Sample(f"/x/{i}_{j}.jpg", i) for i in range(n) for j in range(2)]
    splits = DatasetSplits("toy", names, "{}", samples, samples, samples)
    b, new = base_new_split(splits, "base"), base_new_split(splits, "new")
    assert b.classnames == names[:base] and new.classnames == names[base:]
    assert sorted({s.label for s in b.test}) == list(range(base))
    assert sorted({s.label for s in new.test}) == list(range(n - base))
    assert all(s.path.startswith(f"/x/{s.label + base}_") for s in new.train)
    assert len(b.train) + len(new.train) == len(samples)
    assert base_new_split(splits, "all").classnames == names
