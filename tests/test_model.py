"""The grounding model on the tiny preset (sa2va_st.model): construction, what trains, placeholders,
overfitting a batch of each task, save/load/export, the inference API, the hub path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from sa2va_st.catalog import IMAGE_GROUNDING, TEMPORAL_GROUNDING, VIDEO_GROUNDING
from sa2va_st.errors import ModelError
from sa2va_st.formats import BOX_SEP_TOKEN, FRAME_TOKENS, SPECIAL_TOKENS, ParseFailure
from sa2va_st.formats.boxes import decode_video_box_lists, encode_boxes, encode_video_box_lists, encode_video_boxes
from sa2va_st.formats.windows import encode_window_tokens, indices_to_window
from sa2va_st.model import checkpoint
from sa2va_st.model.config import Sa2vaSTConfig, TrainSettings
from sa2va_st.model.inference import ground_boxes_batch
from sa2va_st.model.modeling import Sa2vaSTModel
from sa2va_st.model.prompts import IGNORE_INDEX, IM_END, MODEL_TOKENS, TEMPORAL_CONTEXT_TOKEN, Sa2vaSTProcessor
from sa2va_st.testing.tiny import TINY_CLIP_DIM, save_tiny_preset, tiny_model_config

REPO = Path(__file__).resolve().parent.parent
N = 100  # temporal tokens of the tiny preset (as upstream)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: one thread is as fast, and steady when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return save_tiny_preset(tmp_path_factory.mktemp("tiny") / "vlm", 0, ["vlm"])["vlm"]


def build(tiny_dir: Path, **changes) -> Sa2vaSTModel:
    return Sa2vaSTModel.from_config(tiny_model_config(tiny_dir, **changes))


@pytest.fixture(scope="module")
def model(tiny_dir) -> Sa2vaSTModel:
    """A fresh model for read-only tests (tests that train build their own)."""
    return build(tiny_dir)


# ----------------------------------------------------------------------------- items (dataset dicts)


def random_box(rng: np.random.Generator) -> list[float]:
    """x1, y1, x2, y2 with sides of 0.15 to 0.4: objects, not slivers (the answer's three decimals stay a
    small fraction of a side)."""
    x1, y1 = rng.uniform(0, 0.6, size=2)
    w, h = rng.uniform(0.15, 0.4, size=2)
    return [float(x1), float(y1), float(x1 + w), float(y1 + h)]


def image_item(seed: int = 0, sentences=("the red circle", "a blue square")) -> dict:
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    boxes = [random_box(rng) for _ in sentences]
    return {
        "task": IMAGE_GROUNDING,
        "image": torch.randint(0, 256, (3, 48 + 16 * seed, 64), dtype=torch.uint8, generator=g),
        "sentences": list(sentences),
        "answers": [encode_boxes([b]) for b in boxes],
        "boxes": torch.tensor(boxes),
    }


VIDEO_SENTENCES = ("the green diamond moving left", "a yellow square", "the green diamond and the yellow square")


def video_item(seed: int = 0, n: int = 6, turns: int = 1) -> dict:
    """A clip with `turns` expressions over the same frames; the last of three turns names two objects."""
    g = torch.Generator().manual_seed(100 + seed)
    rng = np.random.default_rng(100 + seed)
    sentences = [VIDEO_SENTENCES[(seed + k) % 2] for k in range(turns)]
    answers = []
    for k in range(turns):
        if k == 2:  # two objects: one box per visible object, joined by <box_sep>
            sentences[k] = VIDEO_SENTENCES[2]
            frames = [[random_box(rng) for _ in range(int(rng.integers(0, 3)))] for _ in range(n)]
            answers.append(encode_video_box_lists(frames))
        else:
            answers.append(encode_video_boxes([None if rng.random() < 0.3 else random_box(rng) for _ in range(n)]))
    return {
        "task": VIDEO_GROUNDING,
        "frames": torch.randint(0, 256, (n, 3, 40, 56), dtype=torch.uint8, generator=g),
        "sentences": sentences,
        "answers": answers,
    }


def temporal_item(seed: int = 0, window=(12, 37)) -> dict:
    g = torch.Generator().manual_seed(200 + seed)
    features = torch.nn.functional.normalize(torch.randn(N, TINY_CLIP_DIM, generator=g), dim=-1)
    return {
        "task": TEMPORAL_GROUNDING,
        "features": features,
        "sentence": ["a red square appears", "a blue square appears in the top left corner"][seed % 2],
        "answer": encode_window_tokens(*window),
        "duration": 20.0,
    }


def reordered(item: dict) -> dict:
    """The same image with its expressions in reverse order: the dataset shuffles them every epoch, so every
    expression is sometimes the first turn, the one a single-question prompt (the inference API) matches."""
    order = list(range(len(item["sentences"])))[::-1]
    return dict(
        item,
        sentences=[item["sentences"][k] for k in order],
        answers=[item["answers"][k] for k in order],
        boxes=item["boxes"][order],
    )


BATCHES = {
    IMAGE_GROUNDING: lambda: [image_item(0), reordered(image_item(0)), image_item(1, sentences=("the green diamond",))],
    VIDEO_GROUNDING: lambda: [video_item(0), video_item(1)],
    TEMPORAL_GROUNDING: lambda: [temporal_item(0, (12, 37)), temporal_item(1, (70, 99))],
}


# ----------------------------------------------------------------------------- the tiny preset


def test_tiny_folder_is_a_hub_layout_checkpoint(tiny_dir, tmp_path):
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    names = {p.name for p in tiny_dir.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "processor_config.json",
        "generation_config.json",
    } <= names
    assert AutoConfig.from_pretrained(tiny_dir).model_type == "internvl"
    processor = AutoProcessor.from_pretrained(tiny_dir)
    assert type(processor).__name__ == "InternVLProcessor"
    assert (processor.start_image_token, processor.image_token) == ("<img>", "<IMG_CONTEXT>")
    tok = processor.tokenizer
    assert not any(t in tok.get_vocab() for t in MODEL_TOKENS), "the base tokenizer must not know Sa2VA's tokens"
    ids = tok.encode("0.125, 0.732, 0.319, 0.973", add_special_tokens=False)
    assert tok.decode(ids) == "0.125, 0.732, 0.319, 0.973"
    vlm = AutoModelForImageTextToText.from_pretrained(tiny_dir)
    n_params = sum(p.numel() for p in vlm.parameters())
    print(f"tiny InternVL: {n_params:,} parameters")
    assert 0.5e6 < n_params < 5e6
    # deterministic for a seed: the same bytes again, other weights for another seed
    again = save_tiny_preset(tmp_path / "again", 0, ["vlm"])["vlm"]
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_dir / name).read_bytes(), name
    other = save_tiny_preset(tmp_path / "other", 1, ["vlm"])["vlm"]
    assert (other / "model.safetensors").read_bytes() != (tiny_dir / "model.safetensors").read_bytes()


def test_a_local_folder_loads_offline_and_a_missing_one_is_named(tiny_dir, tmp_path):
    config = tiny_model_config(tiny_dir)
    assert config.hub_kwargs() == {"revision": None, "local_files_only": True}
    assert Sa2vaSTConfig(vlm="OpenGVLab/InternVL3_5-4B-HF", revision="abc").hub_kwargs() == {
        "revision": "abc",
        "local_files_only": False,
    }
    with pytest.raises(ModelError) as error:
        Sa2vaSTConfig(vlm=str(tmp_path / "nowhere")).source()
    assert error.value.key == "model.vlm" and "nowhere" in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        Sa2vaSTConfig(vlm=str(tmp_path / "empty")).source()


# ----------------------------------------------------------------------------- tokens and trainability


def test_special_tokens_are_added_in_upstream_order_with_mean_rows(model, tiny_dir):
    from transformers import AutoTokenizer

    base = len(AutoTokenizer.from_pretrained(tiny_dir))
    ids = model.tokenizer.convert_tokens_to_ids(list(MODEL_TOKENS))
    assert list(MODEL_TOKENS[: len(SPECIAL_TOKENS)]) == list(SPECIAL_TOKENS)
    assert MODEL_TOKENS[-1] == TEMPORAL_CONTEXT_TOKEN
    assert ids == list(range(base, base + len(MODEL_TOKENS)))  # appended, in order
    embed = model.internvl.get_input_embeddings().weight
    assert embed.shape[0] == len(model.tokenizer) == model.internvl.get_output_embeddings().weight.shape[0]
    mean = embed[:base].mean(0)
    assert torch.allclose(embed[ids[0]], mean, atol=1e-6) and torch.allclose(embed[ids[-1]], mean, atol=1e-6)
    # a special token is one token, never split
    assert model.tokenizer.encode("<frame_4><frame_2>", add_special_tokens=False) == [
        model.tokenizer.convert_tokens_to_ids(FRAME_TOKENS[4]),
        model.tokenizer.convert_tokens_to_ids(FRAME_TOKENS[2]),
    ]


def test_a_padded_vocabulary_keeps_its_size_and_new_tokens_take_unused_rows(tiny_dir):
    """Qwen's embedding matrix has more rows than the tokenizer has tokens: nothing is resized then."""
    from transformers import AutoProcessor, InternVLForConditionalGeneration

    from sa2va_st.model.modeling import add_model_tokens
    from sa2va_st.testing.tiny import tiny_internvl_config

    tokenizer = AutoProcessor.from_pretrained(tiny_dir).tokenizer
    base = len(tokenizer)
    config = tiny_internvl_config(tokenizer)
    config.text_config.vocab_size = base + 64
    vlm = InternVLForConditionalGeneration(config)
    assert add_model_tokens(vlm, tokenizer) == list(MODEL_TOKENS)
    assert vlm.get_input_embeddings().weight.shape[0] == base + 64 == vlm.get_output_embeddings().weight.shape[0]
    ids = tokenizer.convert_tokens_to_ids(list(MODEL_TOKENS))
    assert ids == list(range(base, base + len(MODEL_TOKENS)))
    assert torch.allclose(vlm.get_input_embeddings().weight[ids[-1]], vlm.get_input_embeddings().weight[:base].mean(0))
    assert add_model_tokens(vlm, tokenizer) == []  # a tokenizer that has them keeps their ids


@pytest.mark.parametrize(
    "train",
    [TrainSettings(), TrainSettings(projector=False, lm_head=False), TrainSettings(lora=False, embeddings=False)],
    ids=["upstream", "no-projector-no-lm_head", "no-lora-no-embeddings"],
)
def test_trainable_set_is_exactly_what_the_config_says(model, tiny_dir, train):
    m = model if train == TrainSettings() else build(tiny_dir, train=train)
    trainable = set(m.trainable_parameters())
    counts = m.parameter_counts()
    print(
        f"\n{train}: trainable {counts['trainable']:,} of {counts['total']:,} "
        + ", ".join(f"{k} {counts[k]:,}" for k in ("lora", "projector", "embeddings", "lm_head", "temporal_projector"))
    )
    assert trainable == m.expected_trainable_names()
    groups = {part: {n for n, _ in params} for part, params in m._trainable_groups().items()}
    for part, names in groups.items():
        assert (names <= trainable) if getattr(train, part) else not (names & trainable), part
    assert bool(groups["lora"]) == train.lora
    # nothing else: no vision tower, no base LLM weight
    rest = trainable - set().union(*groups.values())
    assert not rest, rest
    assert not any("vision_tower" in n for n in trainable)
    assert all("language_model" in n for n in groups["lora"])
    expected_total = sum(counts[part] for part in groups if getattr(train, part))
    assert counts["trainable"] == expected_total
    assert not m.internvl.model.vision_tower.training or not m.training


def test_frozen_parameters_get_no_gradient(tiny_dir):
    m = build(tiny_dir)
    m.train()
    assert not m.internvl.model.vision_tower.training, "the frozen vision tower stays in eval mode"
    for task in (IMAGE_GROUNDING, TEMPORAL_GROUNDING):
        m(**m.processor(BATCHES[task]())).loss.backward()
    frozen_with_grad = [n for n, p in m.named_parameters() if not p.requires_grad and p.grad is not None]
    assert not frozen_with_grad
    no_grad = [n for n, p in m.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    # every trainable part received gradient from one of the two batches (LoRA A and B: B starts at 0,
    # so A gets no gradient on the first step; B does)
    assert not [n for n in no_grad if "lora_A" not in n], no_grad


# ----------------------------------------------------------------------------- prompts and placeholders


def test_labels_are_the_answers_and_end_of_turn_only(model):
    tok = model.tokenizer
    items = [image_item(0), video_item(0, turns=3), temporal_item(0)]
    for item in items:
        batch = model.processor([item])
        ids, labels = batch["input_ids"][0], batch["labels"][0]
        answers = item.get("answers") or [item["answer"]]
        learned = tok.decode(ids[labels != IGNORE_INDEX].tolist(), skip_special_tokens=False)
        assert learned == "".join(a + IM_END for a in answers)
        assert (labels[labels != IGNORE_INDEX] == ids[labels != IGNORE_INDEX]).all()
        # the generation prompt is exactly the training prefix up to the first answer
        prompt = model.processor.for_generation([dict(item, sentences=item.get("sentences", [""])[:1])])["input_ids"][0]
        first = int((labels != IGNORE_INDEX).nonzero()[0])
        assert prompt.tolist() == ids[:first].tolist()
        text = tok.decode(prompt.tolist(), skip_special_tokens=False)
        assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_start|>assistant\n")
    text = tok.decode(model.processor([items[2]])["input_ids"][0].tolist(), skip_special_tokens=False)
    assert text.count(TEMPORAL_CONTEXT_TOKEN) == N and "<TEMPORAL> Please give the start and end of:" in text
    batch = model.processor([items[1]])
    text = tok.decode(batch["input_ids"][0].tolist(), skip_special_tokens=False)
    # three turns over ONE set of frames: the frames are in the prompt (and the pixels) once
    assert text.count("<img>") == 6 and "Frame6: <img>" in text and text.count("<SPATIAL>") == 3
    assert batch["pixel_values"].shape[0] == 6
    assert BOX_SEP_TOKEN in items[1]["answers"][2] and items[1]["answers"][2] in text


def truncating(model: Sa2vaSTModel, max_length: int) -> Sa2vaSTProcessor:
    return Sa2vaSTProcessor(model.hf_processor, num_tokens=N, max_length=max_length)


def test_a_long_sample_loses_whole_turns_from_the_end_and_keeps_its_answers(model):
    item = image_item(0)  # two turns
    full = model.processor.encode(item)
    first_only = model.processor.encode(dict(item, sentences=item["sentences"][:1], answers=item["answers"][:1]))
    cut = truncating(model, len(full.input_ids) - 1).encode(item)
    assert cut.input_ids == first_only.input_ids and cut.labels == first_only.labels
    assert cut.meta == {"turns": 1, "dropped_turns": 1}
    answer = model.tokenizer.decode([t for t in cut.labels if t != IGNORE_INDEX])
    assert item["answers"][0] in answer and item["answers"][1] not in answer
    assert truncating(model, len(full.input_ids)).encode(item).input_ids == full.input_ids  # fits: untouched


def test_a_sample_whose_first_answer_cannot_fit_is_refused_by_name(model):
    from sa2va_st.errors import SampleTooLongError

    item = temporal_item(0)
    length = len(model.processor.encode(item).input_ids)
    with pytest.raises(SampleTooLongError, match="training.max_length|max_length"):
        truncating(model, length - 1).encode(item)


def test_the_training_collator_counts_and_names_skipped_samples(model):
    from sa2va_st.training.data import TrainingCollator

    long_item = dict(temporal_item(0), dataset="charades", split="train", id="q-long", sentence="a " * 200)
    short_item = dict(temporal_item(1), dataset="charades", split="train", id="q-short")
    limit = len(model.processor.encode(short_item).input_ids)
    batch = TrainingCollator(truncating(model, limit))([long_item, short_item])
    assert batch["ids"] == ["charades/train:q-short"] and batch["skipped"] == ["charades/train:q-long"]
    assert batch["skipped_per_task"][TEMPORAL_GROUNDING] == 1 and batch["input_ids"].shape[0] == 1
    empty = TrainingCollator(truncating(model, limit))([long_item])
    assert empty["empty"] and empty["skipped"] == ["charades/train:q-long"]


def test_temporal_tokens_land_at_the_placeholders(model):
    batch = model.processor([image_item(0), temporal_item(0), temporal_item(1)][1:])
    ids = batch["input_ids"]
    model.eval()  # the projector's dropout (0.1, as upstream) draws anew at every call in training mode
    with torch.no_grad():
        embeds = model.embed_inputs(ids, None, batch["temporal_features"])  # (B, L, H)
        projected = model.temporal_projector(batch["temporal_features"])  # (B, N, H)
        plain = model.internvl.get_input_embeddings()(ids)
    slots = ids == model.processor.temporal_token_id
    assert slots.sum(1).tolist() == [N, N]
    for b in range(2):
        assert torch.equal(embeds[b][slots[b]], projected[b])  # feature j at placeholder j, in order
        assert torch.equal(embeds[b][~slots[b]], plain[b][~slots[b]])
    # the image path: image features at <IMG_CONTEXT>, the rest untouched
    batch = model.processor([image_item(0)])
    with torch.no_grad():
        embeds = model.embed_inputs(batch["input_ids"], batch["pixel_values"])
        feats = model.internvl.model.get_image_features(
            pixel_values=batch["pixel_values"], return_dict=True
        ).pooler_output
    slots = batch["input_ids"] == model.processor.image_token_id
    assert torch.equal(embeds[slots], feats.reshape(-1, feats.shape[-1]))


def test_placeholder_and_feature_counts_must_agree(model):
    batch = model.processor([temporal_item(0), temporal_item(1)])
    with pytest.raises(ModelError) as error:
        model(**dict(batch, temporal_features=batch["temporal_features"][:1]))
    assert error.value.key == "temporal_features"
    with pytest.raises(ModelError, match="no temporal_features"):
        model(**dict(batch, temporal_features=None))
    with pytest.raises(ModelError, match="temporal features must be"):
        model.processor([dict(temporal_item(0), features=torch.zeros(50, TINY_CLIP_DIM))])
    with pytest.raises(ModelError, match="32-d"):
        model(**dict(batch, temporal_features=torch.zeros(2, N, 8)))
    image = model.processor([image_item(0)])
    with pytest.raises(ModelError, match="no pixel_values"):
        model(**dict(image, pixel_values=None))


def test_a_collated_dataset_batch_is_accepted(model, tmp_path):
    """Real datasets → sampler → DataLoader(collate_keep_lists) → processor → loss."""
    from torch.utils.data import DataLoader

    from sa2va_st.datasets import ConcatTaskDataset, ImageGroundingDataset, TemporalGroundingDataset, collate_keep_lists

    box = pa.list_(pa.field("element", pa.float64()), 4)
    image_path = tmp_path / "img.jpg"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(image_path)
    rows = [
        dict(
            id=f"r{k}",
            dataset="refcoco",
            split="train",
            image_id=1,
            image_path=str(image_path),
            width=40,
            height=30,
            ref_id=k,
            ann_id=k,
            sentence=f"the red thing {k}",
            raw=f"The red thing {k}.",
            box=[0.1, 0.2, 0.5, 0.6 + k / 10],
        )
        for k in range(2)
    ]
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("dataset", pa.string()),
            ("split", pa.string()),
            ("image_id", pa.int64()),
            ("image_path", pa.string()),
            ("width", pa.int64()),
            ("height", pa.int64()),
            ("ref_id", pa.int64()),
            ("ann_id", pa.int64()),
            ("sentence", pa.string()),
            ("raw", pa.string()),
            ("box", box),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp_path / "image.parquet")
    np.save(tmp_path / "v.npy", np.random.default_rng(0).standard_normal((130, TINY_CLIP_DIM)).astype(np.float16))
    trows = [
        dict(
            id=f"q{k}",
            dataset="charades",
            split="train",
            video="v",
            sentence="a red square appears",
            video_path="v.mp4",
            features_path=str(tmp_path / "v.npy"),
            fps=10.0,
            num_features=130,
            duration=13.0,
            start_s=1.0 + k,
            end_s=5.0 + k,
            start_idx=10 + 10 * k,
            end_idx=50 + 10 * k,
        )
        for k in range(2)
    ]
    tschema = pa.schema(
        [
            ("id", pa.string()),
            ("dataset", pa.string()),
            ("split", pa.string()),
            ("video", pa.string()),
            ("sentence", pa.string()),
            ("video_path", pa.string()),
            ("features_path", pa.string()),
            ("fps", pa.float64()),
            ("num_features", pa.int64()),
            ("duration", pa.float64()),
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("start_idx", pa.int64()),
            ("end_idx", pa.int64()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(trows, schema=tschema), tmp_path / "temporal.parquet")
    mix = ConcatTaskDataset(
        [
            ImageGroundingDataset(tmp_path / "image.parquet"),
            TemporalGroundingDataset(tmp_path / "temporal.parquet", num_positions=N),
        ]
    )
    loader = DataLoader(
        mix,
        batch_sampler=mix.make_sampler(batch_size=1, repeats={"refcoco": 2, "charades": 1}),
        collate_fn=collate_keep_lists,
    )
    seen = set()
    with torch.no_grad():
        for batch in loader:
            out = model(**model.processor(batch))
            assert torch.isfinite(out.loss) and set(out.task_losses) == {batch["task"]}
            seen.add(batch["task"])
    assert seen == {IMAGE_GROUNDING, TEMPORAL_GROUNDING}


def test_per_task_losses_are_tensors_that_add_up_to_the_loss(model):
    """A mixed batch: the per-task sums and token counts (tensors, no host sync) give the batch loss and,
    task by task, what the task's own rows give alone."""
    image, temporal = BATCHES[IMAGE_GROUNDING](), BATCHES[TEMPORAL_GROUNDING]()
    model.eval()  # no dropout: the two forwards must compute the same thing
    with torch.no_grad():
        mixed = model(**model.processor(image + temporal))
        alone = {
            task: model(**model.processor(items))
            for task, items in ((IMAGE_GROUNDING, image), (TEMPORAL_GROUNDING, temporal))
        }
    assert isinstance(mixed.task_loss_sums, torch.Tensor) and not mixed.task_loss_sums.requires_grad
    total = float(mixed.task_loss_sums.sum() / mixed.task_tokens.sum())
    assert total == pytest.approx(float(mixed.loss), rel=1e-5)
    assert set(mixed.task_losses) == {IMAGE_GROUNDING, TEMPORAL_GROUNDING}
    for task, out in alone.items():
        assert mixed.task_losses[task] == pytest.approx(float(out.loss), rel=1e-4)


def test_left_padding_gives_the_same_hidden_states_as_no_padding(model):
    """Positions count real tokens only: a left-padded prompt computes what it computes alone."""
    items = [temporal_item(0), dict(temporal_item(1), sentence="a much longer query about a blue square appearing")]
    batch = model.processor.for_generation(items)
    with torch.no_grad():
        together = model.hidden_states(batch["input_ids"], batch["attention_mask"], None, batch["temporal_features"])
        for b, item in enumerate(items):
            alone = model.processor.for_generation([item])
            h = model.hidden_states(alone["input_ids"], alone["attention_mask"], None, alone["temporal_features"])
            n = alone["input_ids"].shape[1]
            assert torch.allclose(together[b, -n:], h[0], atol=1e-5)


# ----------------------------------------------------------------------------- training


def overfit(m: Sa2vaSTModel, items: list[dict], max_steps: int = 300, lr: float = 3e-3) -> tuple[float, float, int]:
    """Train on one batch until the loss is below 0.01 (answers then come out digit for digit)."""
    batch = m.processor(items)
    optimizer = torch.optim.AdamW(list(m.trainable_parameters().values()), lr=lr, weight_decay=0.0)
    m.train()
    first = last = None
    step = 0
    while step < max_steps:
        step += 1
        out = m(**batch)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        last = float(out.loss.detach())
        first = last if first is None else first
        if last <= 0.01:
            break
    m.eval()
    return first, last, step


@pytest.fixture(scope="module")
def trained(tiny_dir) -> dict[str, Sa2vaSTModel]:
    """One model per task, overfit on a batch of two items of that task (shared by later tests)."""
    torch.manual_seed(0)
    models, report = {}, {}
    for task, make in BATCHES.items():
        m = build(tiny_dir)
        report[task] = overfit(m, make())
        models[task] = m
    models["report"] = report  # type: ignore[assignment]
    return models


@pytest.mark.parametrize("task", list(BATCHES))
def test_a_batch_of_each_task_overfits(trained, task):
    first, last, steps = trained["report"][task]
    print(f"\n{task}: loss {first:.3f} -> {last:.4f} in {steps} steps")
    assert last <= 0.01 < first, f"no overfit in {steps} steps"


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else float(a == b)


def test_the_overfit_image_model_answers_every_expression_through_ground_boxes(trained):
    """A model is trained when it answers: each (image, expression) of the batch, asked alone through the
    inference API, gets its box back within IoU 0.9."""
    m = trained[IMAGE_GROUNDING]
    targets = {}
    for item in BATCHES[IMAGE_GROUNDING]():
        for sentence, box in zip(item["sentences"], item["boxes"].tolist()):
            targets[(item["image"].numpy().tobytes(), sentence)] = (item["image"], box)
    requests = [(image, sentence) for (_, sentence), (image, _) in targets.items()]
    answers, texts = ground_boxes_batch(m, requests, return_text=True)
    assert len(requests) == 3
    for (_, (_, box)), answer, text in zip(targets.items(), answers, texts):
        assert not isinstance(answer, ParseFailure), text
        ((predicted,),) = answer  # one frame, one object
        assert box_iou(predicted, box) >= 0.9, (text, box)


def test_the_overfit_video_model_answers_every_frame_through_ground_boxes(trained):
    m = trained[VIDEO_GROUNDING]
    items = BATCHES[VIDEO_GROUNDING]()
    answers, texts = ground_boxes_batch(m, [(it["frames"], it["sentences"][0]) for it in items], return_text=True)
    for item, answer, text in zip(items, answers, texts):
        assert not isinstance(answer, ParseFailure), text
        expected = decode_video_box_lists(item["answers"][0], n_frames=item["frames"].shape[0])
        assert len(answer) == len(expected)
        for predicted, boxes in zip(answer, expected):
            assert len(predicted) == len(boxes), text
            for got, box in zip(predicted, boxes):
                assert box_iou(got, box) >= 0.9, (text, item["answers"][0])


def test_the_overfit_temporal_model_answers_its_windows(trained):
    m = trained[TEMPORAL_GROUNDING]
    items = BATCHES[TEMPORAL_GROUNDING]()
    from sa2va_st.model.inference import ground_window_batch

    results, texts = ground_window_batch(
        m, [(it["features"].numpy(), it["duration"], it["sentence"]) for it in items], return_text=True
    )
    assert texts == [it["answer"] for it in items]
    assert results[0] == indices_to_window(12, 37, 20.0, N) and results[1] == indices_to_window(70, 99, 20.0, N)
    # a (T, D) table with T != N is sampled at the evaluation rows: here T = 2N, rows 2j or 2j + 1
    table = np.repeat(items[0]["features"].numpy(), 2, axis=0)
    assert m.ground_window(table, 20.0, items[0]["sentence"]) == indices_to_window(12, 37, 20.0, N)


# ----------------------------------------------------------------------------- save, load, export


def test_save_load_and_export_give_identical_logits(trained, tmp_path):
    m = trained[IMAGE_GROUNDING]
    batches = [m.processor(make()) for make in BATCHES.values()]
    with torch.no_grad():
        reference = [m(**b, return_logits=True).logits for b in batches]

    folder = checkpoint.save_trainable(m, tmp_path / "ckpt")
    meta = json.loads((folder / checkpoint.TRAINABLE_META).read_text())
    assert set(meta["parameters"]) == set(m.trainable_parameters())
    assert {p.name for p in folder.iterdir()} == {checkpoint.TRAINABLE_WEIGHTS, checkpoint.TRAINABLE_META}
    loaded = checkpoint.load_trainable(folder)
    with torch.no_grad():
        for b, ref in zip(batches, reference):
            assert torch.equal(loaded(**b, return_logits=True).logits, ref)
    # the special tokens survive: same ids, same (trained) embedding rows
    ids = m.tokenizer.convert_tokens_to_ids(list(MODEL_TOKENS))
    assert loaded.tokenizer.convert_tokens_to_ids(list(MODEL_TOKENS)) == ids
    assert torch.equal(
        loaded.internvl.get_input_embeddings().weight[ids], m.internvl.get_input_embeddings().weight[ids]
    )
    assert not torch.equal(
        m.internvl.get_input_embeddings().weight[ids[0]], m.internvl.get_input_embeddings().weight[ids[5]]
    )

    for merge in (False, True):
        out = checkpoint.export(m, tmp_path / f"export-{merge}", merge_lora=merge)
        assert (out / "vlm" / "config.json").is_file() and (out / "adapter").exists() == (not merge)
        exported = checkpoint.load_exported(out)
        assert not any(p.requires_grad for p in exported.parameters()) and not exported.training
        assert exported.tokenizer.convert_tokens_to_ids(list(MODEL_TOKENS)) == ids
        with torch.no_grad():
            for b, ref in zip(batches, reference):
                logits = exported(**b, return_logits=True).logits
                if merge:  # W + BA summed once instead of per call: float rounding only
                    assert torch.allclose(logits, ref, atol=1e-4, rtol=0)
                else:
                    assert torch.equal(logits, ref)
    with torch.no_grad():  # exporting (merge_and_unload on a copy) left the live model alone
        assert torch.equal(m(**batches[0], return_logits=True).logits, reference[0])
    assert not list(tmp_path.glob("**/*.bin")) and not list(tmp_path.glob("**/*.pt")), "weights only as safetensors"


def test_a_checkpoint_for_another_config_is_refused(trained, tiny_dir, tmp_path):
    folder = checkpoint.save_trainable(trained[TEMPORAL_GROUNDING], tmp_path / "ckpt")
    meta_path = folder / checkpoint.TRAINABLE_META
    meta = json.loads(meta_path.read_text())
    meta["config"]["train"]["lm_head"] = False
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError) as error:
        checkpoint.load_trainable(folder)
    assert "lm_head" in str(error.value) and error.value.file.endswith(checkpoint.TRAINABLE_WEIGHTS)
    meta["format_version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="format_version"):
        checkpoint.load_trainable(folder)


# ----------------------------------------------------------------------------- inference API


def test_inference_decodes_answers_and_marks_garbage(model, monkeypatch):
    canned = {
        "image": "0.100, 0.200, 0.300, 0.400<box_sep>0.5, 0.5, 0.6, 0.6",
        "video": "0.100, 0.200, 0.300, 0.400<next><no_box><next>0.000, 0.000, 1.000, 1.000<box_sep>0.1, 0.1, 0.2, 0.2",
        "temporal": "<frame_1><frame_0>-<frame_1><frame_9>",
    }
    calls = []

    def fake_generate(batch, max_new_tokens=64):
        calls.append((batch["input_ids"].shape[0], max_new_tokens))
        kinds = [
            "temporal"
            if batch["temporal_features"] is not None
            else ("video" if batch["pixel_values"].shape[0] > batch["input_ids"].shape[0] else "image")
        ] * batch["input_ids"].shape[0]
        return [canned[k] for k in kinds]

    monkeypatch.setattr(model, "generate_text", fake_generate)
    image = torch.zeros(3, 40, 50, dtype=torch.uint8)
    both = [[(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.6, 0.6)]]  # one frame, one box per object
    assert model.ground_boxes(image, "the red circle") == both
    assert model.ground_boxes(np.zeros((40, 50, 3), np.uint8), "x") == both  # HWC array
    frames = torch.zeros(3, 3, 40, 50, dtype=torch.uint8)
    assert model.ground_boxes(frames, "x") == [[(0.1, 0.2, 0.3, 0.4)], [], [(0.0, 0.0, 1.0, 1.0), (0.1, 0.1, 0.2, 0.2)]]
    assert isinstance(model.ground_boxes(torch.zeros(4, 3, 40, 50, dtype=torch.uint8), "x"), ParseFailure)  # 3 != 4
    window = model.ground_window(np.zeros((N, TINY_CLIP_DIM), np.float32), 50.0, "a red square appears")
    assert window == (5.0, 10.0)

    canned.update(image="I cannot tell", temporal="<frame_9><frame_9>-<frame_0><frame_0>")
    assert isinstance(model.ground_boxes(image, "x"), ParseFailure)
    assert isinstance(model.ground_window(np.zeros((7, TINY_CLIP_DIM), np.float32), 5.0, "x"), ParseFailure)

    from sa2va_st.model.inference import ground_boxes_batch

    canned["image"] = "0.100, 0.200, 0.300, 0.400"
    calls.clear()
    out = ground_boxes_batch(model, [(image, "a"), (frames, "b"), (image, "c")], batch_size=8)
    assert out[0] == out[2] == [[(0.1, 0.2, 0.3, 0.4)]] and len(out[1]) == 3
    assert [c[0] for c in calls] == [2, 1]  # images together, the video apart


def test_real_generation_returns_text_or_a_parse_failure(model):
    image = torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8)
    result = model.ground_boxes(image, "the red circle")
    assert isinstance(result, ParseFailure) or (len(result) == 1)
    window = model.ground_window(np.random.default_rng(0).standard_normal((30, TINY_CLIP_DIM)), 3.0, "a red square")
    assert isinstance(window, ParseFailure) or 0.0 <= window[0] <= window[1] <= 3.0


# ----------------------------------------------------------------------------- the hub path


@pytest.mark.slow
def test_a_hub_id_loads_through_the_same_path_as_the_folder(tiny_dir, model, tmp_path):
    """The tiny folder served by the local hub server loads by repo id through huggingface_hub."""
    import shutil

    from sa2va_st.testing.hub import HubServer

    repo = tmp_path / "hub" / "hub" / "models" / "sa2va-st" / "tiny-internvl"
    shutil.copytree(tiny_dir, repo)
    script = (
        "import json, torch\n"
        "from sa2va_st.model.modeling import Sa2vaSTModel\n"
        "from sa2va_st.testing.tiny import tiny_model_config\n"
        "from sa2va_st.model.checkpoint import resolved_commit\n"
        "c = tiny_model_config('sa2va-st/tiny-internvl')\n"
        "m = Sa2vaSTModel.from_config(c)\n"
        "print(json.dumps({'counts': m.parameter_counts(), 'commit': resolved_commit(c),\n"
        "  'embed': float(m.internvl.get_input_embeddings().weight.double().sum()),\n"
        "  'ids': m.tokenizer.convert_tokens_to_ids(['<SPATIAL>', '<TEMPORAL_CONTEXT>'])}))\n"
    )
    with HubServer(tmp_path / "hub") as server:
        env = {
            **os.environ,
            "HF_ENDPOINT": server.url,
            "HF_HOME": str(tmp_path / "hf_home"),
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_OFFLINE": "0",
        }
        env.pop("HF_HUB_CACHE", None)
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    assert remote["counts"] == model.parameter_counts()
    assert remote["embed"] == pytest.approx(
        float(model.internvl.get_input_embeddings().weight.detach().double().sum()), abs=1e-9
    )
    assert remote["ids"] == model.tokenizer.convert_tokens_to_ids(["<SPATIAL>", "<TEMPORAL_CONTEXT>"])
    assert remote["commit"] and len(remote["commit"]) == 40  # pinned in checkpoints
    assert list((tmp_path / "hf_home").rglob("model.safetensors")), "the weights came through the hub cache"


# ----------------------------------------------------------------------------- the temporal projector


def upstream_projector_parameters(clip: int, llm: int) -> int:
    """Upstream's temporal projector (spatial_temporal_mllm) for a `llm`-wide LLM, counted by hand:
    Linear clip->2048, 3 x (Linear 2048->2048 + LayerNorm 2048), Linear 2048->4096, LayerNorm 4096,
    Linear 4096->llm, LayerNorm llm; its 2048 and 4096 are 1x and 2x the width of its 2048-wide LLM."""
    width, wide = 2048, 4096
    linear = lambda i, o: i * o + o  # noqa: E731
    norm = lambda d: 2 * d  # noqa: E731
    return (
        linear(clip, width)
        + 3 * (linear(width, width) + norm(width))
        + linear(width, wide)
        + norm(wide)
        + linear(wide, llm)
        + norm(llm)
    )


def test_the_temporal_projector_is_upstreams_for_the_4b_widths():
    from sa2va_st.model.modeling import TemporalProjector

    with torch.device("meta"):
        upstream = TemporalProjector(1024, 2048)  # CLIP ViT-H-14 into InternVL2.5-4B's 2048-wide Qwen2.5-3B
        ours = TemporalProjector(1024, 2560)  # into the default InternVL3.5-4B's 2560-wide Qwen3-4B
    count = sum(p.numel() for p in upstream.parameters())
    assert count == upstream_projector_parameters(1024, 2048) == 31_496_192
    assert sum(p.numel() for p in ours.parameters()) > count  # the same layers, sized by the wider LLM
    dropouts = [m for m in upstream.modules() if isinstance(m, torch.nn.Dropout)]
    assert [d.p for d in dropouts] == [0.1] and isinstance(upstream.norm, torch.nn.LayerNorm)
    assert not any(isinstance(m, torch.nn.LayerNorm) and m.normalized_shape == (1024,) for m in upstream.modules())
    tokens = TemporalProjector(32, 16, dropout=0.0)(torch.randn(2, 100, 32))  # (B, N, C) -> (B, N, H)
    assert tokens.shape == (2, 100, 16)
