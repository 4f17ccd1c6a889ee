"""AdaCLIP: prompt placement, dynamic prompts, weights (release import / refusal), HSF, loss,
maps, preprocessing, identity, and a cross-check of the whole forward against a deliberately
naive, explicit re-statement of spec/adaclip.md §3 on a tiny 8-block model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adaptclip_med.errors import CheckpointMismatchError

TINY = "adaclip-tiny-vit"  # 8 vision blocks (width 96, 3 heads), 5 text blocks, D = text width = 64
SIZE = 70  # 5x5 grid: the 4x4 native position table gets resized
GRID = SIZE // 14


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def backbone_file(tmp_path_factory) -> Path:
    from tests.support.tiny_models import save_random_clip

    return save_random_clip(TINY, tmp_path_factory.mktemp("adaclip") / "tiny_clip.pt", seed=0)


def _spec(backbone_file: Path, weights: str | None = None, activation: str = "auto", class_name: str | None = "brain",
          image_size: int = SIZE):
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.model.backbone_source import BackboneSpec

    return MethodSpec(method="adaclip", backbone=BackboneSpec(TINY, str(backbone_file), activation, offline=True),
                      weights=weights, image_size=image_size, class_name=class_name)


def _load(backbone_file: Path, **kwargs):
    from adaptclip_med.methods.adaclip.method import AdaCLIPMethod

    return AdaCLIPMethod.load(_spec(backbone_file, **kwargs))


def _randomise(parts, seed: int = 5) -> None:
    """Distinct, non-trivial values everywhere (static prompts large enough to matter)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in parts.state_dict().items():
            scale = 1.0 if "static_prompts" in name else 0.2
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * scale)


@pytest.fixture(scope="module")
def method(backbone_file):
    m = _load(backbone_file)
    _randomise(m.network.parts)
    return m


@pytest.fixture()
def images():
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(11))


# ---------------------------------------------------------------------------------- naive re-statement
def _ln(x, module):
    return F.layer_norm(x, (x.shape[-1],), module.weight, module.bias, module.eps)


def _naive_block(block, x, causal: bool = False):
    """Pre-LN block with explicit attention math and exact (erf) GELU; x (..., L, W)."""
    attn = block.attn
    length, width = x.shape[-2:]
    heads = attn.num_heads
    hd = width // heads
    qkv = _ln(x, block.ln_1) @ attn.in_proj_weight.T + attn.in_proj_bias
    q, k, v = (t.reshape(*t.shape[:-1], heads, hd).transpose(-3, -2) for t in qkv.split(width, dim=-1))
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    if causal:
        scores = scores + torch.full((length, length), float("-inf")).triu(1)
    out = (scores.softmax(dim=-1) @ v).transpose(-3, -2).reshape(*x.shape)
    x = x + out @ attn.out_proj.weight.T + attn.out_proj.bias
    h = _ln(x, block.ln_2) @ block.mlp.c_fc.weight.T + block.mlp.c_fc.bias
    h = 0.5 * h * (1.0 + torch.erf(h / math.sqrt(2.0)))
    return x + h @ block.mlp.c_proj.weight.T + block.mlp.c_proj.bias


def _cubic_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """PyTorch's bicubic (a = -0.75, align_corners False, no antialias, clamped borders) as a matrix."""
    a = -0.75

    def w(d: float) -> float:
        d = abs(d)
        if d <= 1:
            return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
        if d < 2:
            return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a
        return 0.0

    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for o in range(n_out):
        src = (o + 0.5) * n_in / n_out - 0.5
        base = math.floor(src)
        for i in range(base - 1, base + 3):
            m[o, min(max(i, 0), n_in - 1)] += w(src - i)
    return m


def _linear_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """Bilinear with align_corners=True as a matrix."""
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for o in range(n_out):
        src = o * (n_in - 1) / (n_out - 1)
        i0 = min(int(math.floor(src)), n_in - 2)
        t = src - i0
        m[o, i0] += 1 - t
        m[o, i0 + 1] += t
    return m


def _naive_forward(method, image: torch.Tensor, class_name: str, labels: np.ndarray):
    """Spec §3 for ONE image, written out step by step (labels: the HSF partition to inject)."""
    clip = method.network.clip
    parts = method.network.parts
    visual = clip.visual
    p = visual.conv1.kernel_size[0]
    wv = visual.conv1.out_channels
    patches = image.reshape(3, GRID, p, GRID, p).permute(1, 3, 0, 2, 4).reshape(GRID * GRID, 3 * p * p)
    tokens = patches @ visual.conv1.weight.reshape(wv, -1).T
    table = visual.positional_embedding
    native = int(round((table.shape[0] - 1) ** 0.5))
    cubic = _cubic_matrix(native, GRID).float()
    grid_pos = table[1:].reshape(native, native, wv)
    resized = torch.einsum("ai,ijc,bj->abc", cubic, grid_pos, cubic).reshape(GRID * GRID, wv)
    x0 = _ln(torch.cat([visual.class_embedding[None], tokens]) + torch.cat([table[:1], resized]), visual.ln_pre)

    blocks = list(visual.transformer.resblocks)
    x = x0
    for block in blocks:
        x = _naive_block(block, x)
    g = _ln(x[0], visual.ln_post) @ visual.proj
    dv = torch.stack([lin.weight @ g + lin.bias for lin in parts.dynamic_visual_prompt_generator.head])
    dt = torch.stack([lin.weight @ g + lin.bias for lin in parts.dynamic_text_prompt_generator.head])

    x, taps = x0, []
    for i, block in enumerate(blocks):
        if i == 0:
            x = torch.cat([x, (parts.visual_prompter.static_prompts[0] + dv).half().float()])
        elif i < 4:
            x = torch.cat([x[:-5], (parts.visual_prompter.static_prompts[i] + dv).half().float()])
        x = _naive_block(block, x)
        if i + 1 in (2, 4, 6, 8):
            taps.append(x[:-5])
    pooled = _ln(x[0], visual.ln_post) @ visual.proj
    v = F.normalize(parts.cls_token_layer.head[0].weight @ pooled + parts.cls_token_layer.head[0].bias, dim=0)
    P = [F.normalize(t[1:] @ lin.weight.T + lin.bias, dim=-1) for t, lin in zip(taps, parts.patch_token_layer.head)]

    from adaptclip_med.methods.adaclip.text import sentences

    columns = []
    for group in sentences(class_name):
        ids = method.network.text.tokenizer(group)
        assert bool((ids[:, 0] == 49406).all())
        t = clip.token_embedding.weight[ids] + clip.positional_embedding
        for i, block in enumerate(clip.transformer.resblocks):
            if i in (1, 2, 3):
                t = t.clone()
                for s_index in range(t.shape[0]):  # every sentence gets the same 5 vectors at positions 1..5
                    t[s_index, 1:6] = (parts.text_prompter.static_prompts[i] + dt).half().float()
            t = _naive_block(block, t, causal=True)
        t = _ln(t, clip.ln_final)
        feats = [F.normalize(t[n, int(ids[n].argmax())] @ clip.text_projection, dim=0) for n in range(t.shape[0])]
        columns.append(F.normalize(torch.stack(feats).mean(0), dim=0))
    T = torch.stack(columns, dim=1)

    S = [100.0 * pj @ T for pj in P]
    up = _linear_matrix(GRID, SIZE).float()
    logit_maps = [torch.einsum("ai,cij,bj->cab", up, s.T.reshape(2, GRID, GRID), up) for s in S]
    prob = torch.stack(logit_maps).mean(0).softmax(dim=0)
    raw_map = (prob[1] + 1 - prob[0]) / 2

    a = torch.stack(S).mean(0).softmax(-1)[:, 1]
    order = np.argsort(-a.numpy(), kind="stable")[: min(100, a.shape[0])]
    centroids = []
    for c in np.unique(labels):
        members = order[labels == c]
        centroids.append(torch.cat([pj[members] for pj in P]).mean(0))
    h = F.normalize(torch.stack(centroids).mean(0), dim=0)
    f = F.normalize(0.2 * h + 0.8 * v, dim=0)
    score = (100.0 * f @ T).softmax(-1)[1]
    return raw_map, score, g, dv, dt


# ---------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def naive_case(method):
    image = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        encoded = method.encode(image)
        pred = method.predict_encoded(encoded)
        naive = _naive_forward(method, image[0], "brain", encoded.labels[0])
    return encoded, pred, naive


def test_forward_matches_naive_restatement(naive_case):
    from scipy.ndimage import gaussian_filter

    encoded, pred, (raw, score, g, _, _) = naive_case
    assert torch.allclose(encoded.g[0], g, atol=1e-5)
    assert (pred.extra_maps["unsmoothed"][0] - raw).abs().max() < 1e-5
    smoothed = gaussian_filter(raw.numpy(), sigma=4)
    assert np.abs(pred.anomaly_map[0].numpy() - smoothed).max() < 1e-5
    assert abs(float(pred.score[0]) - float(score)) < 1e-5


def test_position_table_resize_is_bicubic_without_antialias(method):
    from adaptclip_med.methods.adaclip.vision import resize_position_table

    table = method.network.clip.visual.positional_embedding.detach()
    resized = resize_position_table(table, 7)
    cubic = _cubic_matrix(4, 7)
    expected = torch.einsum("ai,ijc,bj->abc", cubic, table[1:].double().reshape(4, 4, -1), cubic).reshape(49, -1)
    assert torch.equal(resized[0], table[0])
    assert torch.allclose(resized[1:].double(), expected, atol=1e-5)
    bilinear = F.interpolate(table[1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2), size=(7, 7), mode="bilinear")
    assert not torch.allclose(resized[1:], bilinear.permute(0, 2, 3, 1).reshape(49, -1), atol=1e-3)


def test_prompt_positions_per_block(method, images):
    """Vision: appended before block 0, refreshed before 1..3, carried from 4 on.
    Text: block 0 plain; positions 1..5 overwritten before 1..3; carried at 4."""
    net = method.network
    parts = net.parts
    vin, vout, tin, tout = {}, {}, {}, {}
    handles = []
    for store_in, store_out, blocks in ((vin, vout, net.vision.blocks), (tin, tout, net.text.blocks)):
        for i, block in enumerate(blocks):
            handles.append(block.register_forward_pre_hook(
                lambda mod, args, kw, i=i, s=store_in: s.setdefault(i, []).append(args[0].detach().clone()), with_kwargs=True))
            handles.append(block.register_forward_hook(
                lambda mod, args, out, i=i, s=store_out: s.setdefault(i, []).append(out.detach().clone())))
    try:
        with torch.no_grad():
            image = images[:1]
            g = net.vision.plain_embedding(image)
            vin.clear(); vout.clear()
            out = net(image, ["brain"])
    finally:
        for h in handles:
            h.remove()
    dv = parts.dynamic_visual_prompt_generator(g)
    dt = parts.dynamic_text_prompt_generator(g)[0]
    n = GRID * GRID + 1
    embedded = net.vision.embed(image)
    # vision: the first call of every block is the plain pass (n tokens), the second the prompted one
    assert vin[0][0].shape[1] == n and vin[0][1].shape[1] == n + 5
    assert torch.equal(vin[0][1][:, :n], embedded)
    for i in range(4):
        expected = (parts.visual_prompter.static_prompts[i] + dv).half().float()
        assert torch.equal(vin[i][1][:, n:], expected), i
        if i:
            assert torch.equal(vin[i][1][:, :n], vout[i - 1][1][:, :n])
    for i in range(4, len(net.vision.blocks)):
        assert torch.equal(vin[i][1], vout[i - 1][1])
    assert not torch.equal(vin[1][1][:, n:], vout[0][1][:, n:])
    # text: per image, normal then abnormal sentences; inspect the normal batch (first call)
    tokens = net.text.tokens("brain")[0]
    plain = net.clip.token_embedding(tokens) + net.clip.positional_embedding
    # the causal mask makes the padding after the longest sentence's EOT irrelevant: it is cut
    keep = int(tokens.argmax(dim=-1).max()) + 1
    assert tin[0][0].shape[1] == keep < tokens.shape[1]
    assert torch.equal(tin[0][0], plain[:, :keep])
    for i in (1, 2, 3):
        expected = (parts.text_prompter.static_prompts[i] + dt).half().float()
        assert torch.equal(tin[i][0][:, 1:6], expected.expand(tokens.shape[0], 5, -1))
        assert torch.equal(tin[i][0][:, :1], tout[i - 1][0][:, :1])
        assert torch.equal(tin[i][0][:, 6:], tout[i - 1][0][:, 6:])
    assert torch.equal(tin[4][0], tout[3][0])
    assert out.text.shape == (1, 64, 2)


def test_dynamic_prompt_is_generator_of_unprompted_embedding(method, naive_case):
    encoded, _, (_, _, g, dv, dt) = naive_case
    parts = method.network.parts
    with torch.no_grad():
        assert torch.allclose(encoded.g[0], g, atol=1e-5)
        assert torch.allclose(parts.dynamic_visual_prompt_generator(encoded.g)[0], dv, atol=1e-5)
        assert torch.allclose(parts.dynamic_text_prompt_generator(encoded.g)[0], dt, atol=1e-5)


def test_batch_equals_images_one_by_one(method, images):
    """Q13: one image's dynamic text prompts never reach another image."""
    with torch.no_grad():
        both = method.predict(images)
        first = method.predict(images[:1])
        second = method.predict(images[1:])
    assert torch.allclose(both.anomaly_map[0], first.anomaly_map[0], atol=1e-5)
    assert torch.allclose(both.anomaly_map[1], second.anomaly_map[0], atol=1e-5)
    assert torch.allclose(both.score, torch.cat([first.score, second.score]), atol=1e-5)


# ------------------------------------------------------------------ weights
#: spec manifest (adaclip_checkpoint_manifest.json): the 38 keys, in order, with their ViT-L shapes
MANIFEST = (
    [(f"clip_model.text_prompter.static_prompts.{i}", (5, 768)) for i in range(4)]
    + [(f"clip_model.visual_prompter.static_prompts.{i}", (5, 1024)) for i in range(4)]
    + [x for j in range(4) for x in ((f"clip_model.patch_token_layer.head.{j}.weight", (768, 1024)),
                                      (f"clip_model.patch_token_layer.head.{j}.bias", (768,)))]
    + [("clip_model.cls_token_layer.head.0.weight", (768, 768)), ("clip_model.cls_token_layer.head.0.bias", (768,))]
    + [x for j in range(5) for x in ((f"clip_model.dynamic_visual_prompt_generator.head.{j}.weight", (1024, 768)),
                                      (f"clip_model.dynamic_visual_prompt_generator.head.{j}.bias", (1024,)))]
    + [x for j in range(5) for x in ((f"clip_model.dynamic_text_prompt_generator.head.{j}.weight", (768, 768)),
                                      (f"clip_model.dynamic_text_prompt_generator.head.{j}.bias", (768,)))]
)


def test_trainable_names_and_shapes_match_the_release_manifest():
    from adaptclip_med.methods.adaclip.parts import AdaClipParts, PartDims

    parts = AdaClipParts(PartDims(vision_width=1024, embed_dim=768))
    layout = [(k, tuple(v.shape)) for k, v in parts.release_state_dict().items()]
    assert layout == MANIFEST
    assert len(layout) == 38 and sum(math.prod(s) for _, s in layout) == 10_665_472


def _release_file(method, path: Path, seed: int = 9) -> Path:
    generator = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=generator) * 0.3 for k, v in method.network.parts.release_state_dict().items()}
    torch.save(state, path)
    return path


def test_release_import_round_trip(method, backbone_file, images, tmp_path):
    from adaptclip_med.methods.adaclip.weights import import_release

    release = _release_file(method, tmp_path / "pretrained_all.pth")
    direct = _load(backbone_file, weights=str(release))
    converted = import_release(release, tmp_path / "all.safetensors")
    imported = _load(backbone_file, weights=str(converted))
    for key, value in torch.load(release, weights_only=True).items():
        assert torch.equal(direct.network.parts.state_dict()[key[len("clip_model."):]], value)
    with torch.no_grad():
        a, b = direct.predict(images[:1]), imported.predict(images[:1])
    assert torch.equal(a.anomaly_map, b.anomaly_map) and torch.equal(a.score, b.score)
    ident = direct.identity()
    assert ident["weights"] == "pretrained_all.pth" and len(ident["weights_sha256"]) == 64
    assert ident["weights_provenance"]["checksum"] == "not published by the authors"
    assert imported.identity()["weights_provenance"]["sha256"] == ident["weights_sha256"]
    # the project's own save path round-trips too
    saved = direct.save_weights(tmp_path / "saved.safetensors", {"source": "test"})
    again = _load(backbone_file, weights=str(saved))
    assert all(torch.equal(again.network.parts.state_dict()[k], v) for k, v in direct.network.parts.state_dict().items())


@pytest.mark.parametrize("damage", ["missing", "shape"])
def test_release_with_missing_or_misshaped_key_is_refused(method, backbone_file, tmp_path, damage):
    path = _release_file(method, tmp_path / "broken.pth")
    state = torch.load(path, weights_only=True)
    key = "clip_model.dynamic_text_prompt_generator.head.3.bias"
    if damage == "missing":
        del state[key]
    else:
        state[key] = torch.zeros(7)
    state["clip_model.unrelated"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError) as err:
        _load(backbone_file, weights=str(path))
    message = str(err.value)
    assert key in message and "\n" not in message


# ------------------------------------------------------------------ HSF
def test_hsf_on_a_hand_made_case():
    """12 patches, K = 2 -> the 10 most anomalous kept (5K), two clusters of unequal size (7, 3),
    equal cluster weights, centroids pooled over the 4 taps; the 2 least anomalous are ignored."""
    from adaptclip_med.methods.adaclip import hsf

    e = torch.eye(8)
    n_taps, n = 4, 12
    groups = ["a"] * 7 + ["b"] * 3 + ["low"] * 2
    tokens = []
    for j in range(n_taps):
        rows = []
        for gname in groups:
            base = {"a": e[0], "b": e[1], "low": e[2]}[gname]
            rows.append(F.normalize(base + 0.5 * j * e[3 + j], dim=0))
        tokens.append(torch.stack(rows))
    anomaly = torch.linspace(3.0, 1.0, n)  # descending: the two 'low' patches are the least anomalous
    logits = [torch.stack([torch.zeros(n), anomaly], dim=1) for _ in range(n_taps)]
    h, labels = hsf.cluster_feature(tokens, logits, k=2)
    assert sorted(np.bincount(labels).tolist()) == [3, 7]

    def centroid(gname: str) -> torch.Tensor:
        idx = [i for i, x in enumerate(groups) if x == gname]
        return torch.stack([tokens[j][i] for j in range(n_taps) for i in idx]).mean(0)

    expected = F.normalize((centroid("a") + centroid("b")) / 2, dim=0)
    assert torch.allclose(h, expected, atol=1e-6)
    # fusion 0.2 / 0.8 and the temperature-100 softmax
    v = F.normalize(e[0] + e[1] * 0.3, dim=0)
    text = torch.stack([F.normalize(e[0], dim=0), F.normalize(e[1], dim=0)], dim=1)
    f = F.normalize(0.2 * expected + 0.8 * v, dim=0)
    assert torch.allclose(hsf.fused_score(h, v, text), (100 * f @ text).softmax(-1), atol=1e-6)


def test_hsf_keeps_topk_rows_in_descending_order_and_kmeans_seed():
    from adaptclip_med.methods.adaclip import hsf

    logits = [torch.randn(300, 2, generator=torch.Generator().manual_seed(j)) for j in range(4)]
    index = hsf.top_patches(logits, 100)
    a = torch.stack(logits).mean(0).softmax(-1)[:, 1]
    assert index.shape == (100,) and torch.all(a[index][:-1] >= a[index][1:])
    assert set(index.tolist()) == set(torch.argsort(a, descending=True)[:100].tolist())
    rows = np.random.default_rng(0).normal(size=(100, 12)).astype(np.float32)
    from sklearn.cluster import KMeans

    assert np.array_equal(hsf.kmeans_labels(rows, 20), KMeans(20, n_init="auto", random_state=111).fit_predict(rows))


# ------------------------------------------------------------------ training
def test_one_adamw_step_lowers_the_loss(backbone_file, images):
    m = _load(backbone_file)
    parts = m.trainable_module()
    settings = m.optimizer_settings()
    assert settings == {"optimizer": "adamw", "lr": 0.01, "betas": (0.5, 0.999), "eps": 1e-8, "weight_decay": 0.01,
                        "epochs": 5, "batch_size": 1}
    assert len(list(parts.parameters())) == 38
    optimizer = torch.optim.AdamW(parts.parameters(), lr=settings["lr"], betas=settings["betas"], eps=settings["eps"],
                                  weight_decay=settings["weight_decay"])
    mask = torch.zeros(1, SIZE, SIZE)
    mask[:, 20:45, 10:40] = 1.0
    label = torch.tensor([1])
    parts.train()
    before = m.training_loss(images[:1], mask, label, ["brain"])
    assert set(before) == {"total", "image_focal", "pixel_focal", "dice_abnormal", "dice_normal"}
    optimizer.zero_grad()
    before["total"].backward()
    assert all(p.grad is None for p in m.network.clip.parameters())
    grads = {k: p.grad for k, p in parts.named_parameters()}
    assert grads.pop("text_prompter.static_prompts.0") is None  # dead weight (Q4)
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    optimizer.step()
    after = m.training_loss(images[:1], mask, label, ["brain"])
    assert after["total"].item() < before["total"].detach().item()


def test_focal_and_row_dice_definitions():
    from adaptclip_med.methods.adaclip.loss import focal_loss, row_dice_loss

    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    target = torch.tensor([0, 0])
    pt = torch.tensor([0.9 * (1 - 1e-5) + 0.1 * 1e-5, 0.2 * (1 - 1e-5) + 0.8 * 1e-5]) + 1e-5
    assert torch.allclose(focal_loss(probs, target), (-(1 - pt) ** 2 * pt.log()).mean())
    pred = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    gt = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    rows = torch.tensor([1 - (2 * 1 + 1) / (1 + 1 + 1), 1 - (0 + 1) / (1 + 0 + 1)])
    assert torch.allclose(row_dice_loss(pred, gt), rows.mean())


# ------------------------------------------------------------------ maps, input, identity
def test_map_shape_range_and_scipy_smoothing(method, images):
    from scipy.ndimage import gaussian_filter

    with torch.no_grad():
        pred = method.predict(images)
    assert pred.anomaly_map.shape == (2, SIZE, SIZE) and pred.score.shape == (2,)
    assert pred.anomaly_map.dtype == torch.float32
    assert float(pred.anomaly_map.min()) >= 0 and float(pred.anomaly_map.max()) <= 1
    raw = pred.extra_maps["unsmoothed"].numpy()
    for b in range(2):
        expected = gaussian_filter(raw[b], sigma=4, mode="reflect", truncate=4.0)
        assert np.array_equal(pred.anomaly_map[b].numpy(), expected)
    assert set(pred.extra_maps) == {"unsmoothed", "tap0", "tap1", "tap2", "tap3"}
    assert torch.equal(pred.extra_scores["hsf"], pred.score)


def test_non_square_image_is_squashed_with_pil_bicubic(method):
    from PIL import Image

    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, size=(40, 90, 3), dtype=np.uint8))
    x = method.image_input([image])
    assert x.shape == (1, 3, SIZE, SIZE)
    squashed = np.asarray(image.resize((SIZE, SIZE), Image.BICUBIC), dtype=np.float32) / 255.0
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)
    assert torch.equal(x[0], (torch.from_numpy(squashed).permute(2, 0, 1) - mean) / std)
    grey = Image.fromarray(rng.integers(0, 256, size=(50, 30), dtype=np.uint8))
    with torch.no_grad():
        pred = method.predict(method.image_input([grey]))
    assert pred.anomaly_map.shape == (1, SIZE, SIZE)


def test_identity_records_class_name_activation_and_kmeans_seed(method):
    ident = method.identity()
    assert ident["method"] == "adaclip" and ident["class_name"] == "brain"
    assert ident["backbone"]["activation"] == "gelu" and ident["image_size"] == SIZE
    assert ident["hsf"]["kmeans_seed"] == 111 and ident["weights"] == "untrained"
    for key in ("backbone", "weights", "weights_sha256", "image_size", "preprocessing", "class_name"):
        assert key in ident
    import json

    json.dumps(ident)


def test_auto_activation_is_gelu_even_for_openai_weights(backbone_file):
    import open_clip
    from open_clip.transformer import QuickGELU

    from adaptclip_med.methods.adaclip.method import choose_activation
    from adaptclip_med.model.backbone_source import resolve_activation

    config = open_clip.get_model_config("ViT-L-14-336")
    assert resolve_activation("ViT-L-14-336", config, "openai") == "quickgelu"  # the project's rule for AdaptCLIP
    assert choose_activation("auto") == "gelu" and choose_activation(None) == "gelu"
    assert choose_activation("quickgelu") == "quickgelu"
    quick = _load(backbone_file, activation="quickgelu")
    assert quick.identity()["backbone"]["activation"] == "quickgelu"
    assert all(isinstance(b.mlp.gelu, QuickGELU) for b in quick.network.clip.visual.transformer.resblocks)
    gelu = _load(backbone_file)
    assert all(type(b.mlp.gelu) is torch.nn.GELU for b in gelu.network.clip.transformer.resblocks)


def test_class_name_handling_and_sentence_order():
    from adaptclip_med.methods.adaclip.text import sentences

    normal, abnormal = sentences("metal-nut")
    assert len(normal) == 28 and len(abnormal) == 20
    assert normal[:2] == ["a bad photo of a metal nut.", "a low resolution photo of the metal nut."]
    assert normal[4] == "a bad photo of a flawless metal nut." and abnormal[-1] == "a cropped photo of the metal nut with damage."
    assert sentences("metal_nut")[0][0] == "a bad photo of a metal_nut."


def test_image_size_must_be_a_multiple_of_the_patch(backbone_file):
    from adaptclip_med.errors import AdaptClipError

    with pytest.raises(AdaptClipError, match="multiple of the backbone's patch size 14"):
        _load(backbone_file, image_size=60)


def test_registered_with_the_contract():
    from adaptclip_med.methods.registry import get_method

    cls = get_method("adaclip")
    assert cls.references == "unused" and cls.uses_class_name and cls.trainable
    assert cls.default_backbone == ("ViT-L-14-336", "openai") and cls.precisions == ("fp32",)
    assert cls.default_class_name


# ------------------------------------------------------------------ weights CLI
def test_weights_cli_lists_fetches_and_imports_adaclip(method, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from adaptclip_med.cli.main import app
    from adaptclip_med.methods.adaclip.weights import read_project_metadata

    monkeypatch.setenv("ADAPTCLIP_MED_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    status = runner.invoke(app, ["weights", "status", "--cache-dir", str(tmp_path)])
    assert status.exit_code == 0, status.output
    for name in ("pretrained_mvtec_colondb.pth", "pretrained_visa_clinicdb.pth", "pretrained_all.pth"):
        assert name in status.output
    assert "caoyunkang/AdaCLIP" in status.output and "no checksum" in status.output
    fetch = runner.invoke(app, ["weights", "fetch", "--method", "adaclip"])
    assert fetch.exit_code == 0 and "caoyunkang/AdaCLIP" in fetch.output
    folder = tmp_path / "home" / "adaclip"
    folder.mkdir(parents=True)
    src = _release_file(method, folder / "pretrained_all.pth")
    imported = runner.invoke(app, ["weights", "import", str(src), "--method", "adaclip"])
    assert imported.exit_code == 0, imported.output
    meta = read_project_metadata(folder / "pretrained_all.safetensors")
    assert meta["provenance"]["source"] == "release:pretrained_all.pth" and meta["prompt_length"] == 5
    status = runner.invoke(app, ["weights", "status", "--cache-dir", str(tmp_path)])
    line = next(l for l in status.output.splitlines() if "pretrained_all.pth" in l)
    assert "present" in line and "converted pretrained_all" in status.output


def test_predict_cli_with_a_release_file_on_a_non_square_png(method, backbone_file, tmp_path):
    """The acceptance path: ``predict QUERY --method adaclip --class-name NAME --image-size S``
    with a backbone state-dict file and trainable parts in the released .pth layout."""
    from PIL import Image
    from typer.testing import CliRunner

    from adaptclip_med.cli.main import app
    from adaptclip_med.preprocess import load_rgb_image

    release = _release_file(method, tmp_path / "pretrained_mvtec_colondb.pth")
    query = tmp_path / "q.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (50, 90, 3), dtype=np.uint8)).save(query)
    out = tmp_path / "r.npz"
    result = CliRunner().invoke(app, ["predict", str(query), "--method", "adaclip", "--class-name", "metal-nut",
                                      "--image-size", str(SIZE), "--backbone", TINY, "--backbone-weights", str(backbone_file),
                                      "--adapters", str(release), "--offline", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = np.load(out)
    expected = _load(backbone_file, weights=str(release), class_name="metal-nut")
    with torch.no_grad():
        direct = expected.predict(expected.image_input([load_rgb_image(query)]))
    assert saved["anomaly_map"].shape == (SIZE, SIZE)
    np.testing.assert_allclose(saved["anomaly_map"], direct.anomaly_map[0].numpy(), atol=1e-6)
    assert abs(float(saved["score"]) - float(direct.score[0])) < 1e-6
    assert "class 'metal-nut'" in result.output
    # zero-shot method: references are refused with one line
    bad = CliRunner().invoke(app, ["predict", str(query), "-r", str(query), "--method", "adaclip", "--backbone", TINY,
                                   "--backbone-weights", str(backbone_file), "--adapters", str(release), "--offline",
                                   "--image-size", str(SIZE), "--out", str(tmp_path / "x.npz")])
    assert bad.exit_code == 2 and "does not use reference images" in bad.output
