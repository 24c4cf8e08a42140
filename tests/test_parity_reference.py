"""Exactness against the authors' reference code (shared/parity): UPT `reference`, CoOp, CoCoOp, VPT."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from helpers import shared_path
from upt.backbone import load_backbone
from upt.methods import build_method

TOL = 1e-4


@pytest.fixture(scope="module")
def ref():
    from safetensors.torch import load_file

    folder = shared_path("parity")
    tensors = load_file(str(folder / "reference_tiny.safetensors"))
    meta = json.loads((folder / "reference_tiny.json").read_text())
    backbone = load_backbone("tiny", None)
    clip = {k[len("clip."):]: v for k, v in tensors.items() if k.startswith("clip.")}
    missing, unexpected = backbone.model.load_state_dict(clip, strict=False)
    assert not unexpected and all("attn_mask" in k for k in missing)
    return tensors, meta, backbone


def _check(method, tensors, meta, prefix, grads: dict[str, str]):
    images = tensors["images"]
    labels = torch.tensor(meta["labels"])
    method.eval()
    logits = method(images)
    assert (logits - tensors[f"{prefix}.logits"]).abs().max().item() <= TOL
    loss = F.cross_entropy(logits, labels)
    if f"{prefix}.loss" in meta:
        assert abs(loss.item() - meta[f"{prefix}.loss"]) <= TOL
    loss.backward()
    params = dict(method.named_parameters())
    for ours, theirs in grads.items():
        g = params[ours].grad.reshape(tensors[theirs].shape)
        assert (g - tensors[theirs]).abs().max().item() <= TOL, ours


def test_upt_reference_reading(ref):
    tensors, meta, backbone = ref
    m = build_method("upt", backbone, meta["classnames"], config={"token_mixing": "reference"})
    names = {"net.prompt": "uni_ctx", "net.proj.weight": "mlp.weight", "net.proj.bias": "mlp.bias"}
    for k in ("self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
              "self_attn.out_proj.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
              "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias"):
        names[f"net.{k}"] = k
    state = {ours: tensors[f"upt.prompt_learner.{theirs}"].reshape(p.shape)
             for ours, p in m.named_parameters() for o2, theirs in names.items() if ours == o2}
    assert len(state) == len(list(m.parameters()))
    m.load_trainable_state_dict(state)
    m.eval()
    text, visual = m.net()
    assert (text - tensors["upt.text_prompt"]).abs().max().item() <= TOL
    assert (visual[0] - tensors["upt.visual_prompt"]).abs().max().item() <= TOL
    _check(m, tensors, meta, "upt", {ours: f"upt.grad.{theirs}" for ours, theirs in names.items()})


@pytest.mark.parametrize("position", ["end", "middle", "front"])
def test_coop(ref, position):
    tensors, meta, backbone = ref
    m = build_method("coop", backbone, meta["classnames"], config={"n_ctx": 16, "class_token_position": position})
    m.load_trainable_state_dict({"ctx": tensors[f"coop_{position}.ctx"]})
    _check(m, tensors, meta, f"coop_{position}", {"ctx": f"coop_{position}.grad.ctx"})


def test_cocoop(ref):
    tensors, meta, backbone = ref
    m = build_method("cocoop", backbone, meta["classnames"])
    state = {k: tensors[f"cocoop.prompt_learner.{k}"] for k in m.trainable_state_dict()}
    m.load_trainable_state_dict(state)
    _check(m, tensors, meta, "cocoop", {k: f"cocoop.grad.{k}" for k in state})


@pytest.mark.parametrize("mode", ["shallow", "deep"])
def test_vpt(ref, mode):
    tensors, meta, backbone = ref
    m = build_method("vpt", backbone, meta["classnames"], config={"mode": mode})
    m.load_trainable_state_dict({"prompts": tensors[f"vpt_{mode}.prompts"]})
    m.eval()
    assert (m(tensors["images"]) - tensors[f"vpt_{mode}.logits"]).abs().max().item() <= TOL
