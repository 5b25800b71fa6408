"""Dataset items → model inputs: the chat prompt, the answer, labels on the answer only, padded batches.

**Tokens.** The tokenizer gets upstream's special tokens in upstream order
(`sa2va_st.formats.tokens.SPECIAL_TOKENS`) and then ONE more, ``<TEMPORAL_CONTEXT>``, the
placeholder of a temporal feature: the prompt holds ``num_tokens`` of them, and the model replaces
their embeddings with the temporal projector's outputs (as InternVL does with ``<IMG_CONTEXT>``
for image features). A separate token, rather than ``<TEMPORAL>`` repeated, keeps ``<TEMPORAL>``
the task token whose own embedding the model sees, and makes the placeholder count unambiguous;
appended last, it leaves the ids of upstream's tokens in upstream's order.

**Prompt** (ChatML, as InternVL3/3.5 and Qwen use; no system turn). The visual part comes
first in the first user turn, then the task token and the question:

- image (one item = one image with up to 5 expressions, one turn per expression)::

      <|im_start|>user\\n<img><IMG_CONTEXT>×(S·tiles)</img>\\n<SPATIAL> Please give the bounding box of: {sentence}<|im_end|>\\n
      <|im_start|>assistant\\n{answer}<|im_end|>\\n<|im_start|>user\\n<SPATIAL> Please give ...

- video (one item = one clip with up to 5 expressions, one turn per expression over the same frames;
  frames one tile each, InternVL's own video layout)::

      <|im_start|>user\\nFrame1: <img>…</img>\\nFrame2: <img>…</img>…\\n<SPATIAL> Please give the bounding box in every frame of: {sentence}<|im_end|>\\n
      <|im_start|>assistant\\n{answer}<|im_end|>\\n<|im_start|>user\\n<SPATIAL> Please give ...

- temporal::

      <|im_start|>user\\n<TEMPORAL_CONTEXT>×N\\n<TEMPORAL> Please give the start and end of: {sentence}<|im_end|>\\n
      <|im_start|>assistant\\n{answer}<|im_end|>

``S`` is the processor's ``image_seq_length`` (256 for InternVL at 448 px). **Labels** are the
token ids of each answer and of the ``<|im_end|>`` that closes it (so the model learns to stop);
every other position is -100. Text segments are tokenised separately and concatenated, so the
prompt of a generation request (ending in ``<|im_start|>assistant\\n``) tokenises exactly as the
same prefix did in training. Image placeholder runs are built as ids directly (thousands of
``<IMG_CONTEXT>`` would be slow to tokenise).

**Batches.** `Sa2vaSTProcessor.__call__` takes a list of items (or a ``collate_keep_lists``
batch) and returns ``input_ids``/``attention_mask``/``labels`` (B, L) padded on the right for
training, on the left for generation (`for_generation`), ``pixel_values`` (P, 3, s, s) of all
images/frames of the batch in order (or None), ``temporal_features`` (B_t, N, D) of the
temporal items in order (or None) and ``task`` (list of B task names).

**Truncation** (``max_length``, training only). A sample longer than ``max_length`` tokens loses
whole turns from the end (question and answer together, never part of an answer, never the visual
tokens, which must match the pixels), down to the first turn; a sample whose first turn does not fit
raises `SampleTooLongError`, which the trainer counts and skips. ``EncodedSample.meta`` says how many
turns were kept and dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..catalog import IMAGE_GROUNDING, TEMPORAL_GROUNDING, VIDEO_GROUNDING
from ..errors import ModelError, SampleTooLongError
from ..formats.tokens import SPATIAL_TOKEN, SPECIAL_TOKENS, TEMPORAL_TOKEN

TEMPORAL_CONTEXT_TOKEN = "<TEMPORAL_CONTEXT>"
# what the model adds to the base tokenizer, in this order (upstream's first, then ours)
MODEL_TOKENS: tuple[str, ...] = (*SPECIAL_TOKENS, TEMPORAL_CONTEXT_TOKEN)

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
IGNORE_INDEX = -100
TASKS = (IMAGE_GROUNDING, VIDEO_GROUNDING, TEMPORAL_GROUNDING)

IMAGE_QUESTION = SPATIAL_TOKEN + " Please give the bounding box of: {sentence}"
VIDEO_QUESTION = SPATIAL_TOKEN + " Please give the bounding box in every frame of: {sentence}"
TEMPORAL_QUESTION = TEMPORAL_TOKEN + " Please give the start and end of: {sentence}"


@dataclass
class EncodedSample:
    """One sample as ids: ``input_ids`` and ``labels`` (same length), its images and features."""

    task: str
    input_ids: list[int]
    labels: list[int]
    pixel_values: torch.Tensor | None = None  # (P, 3, s, s): its tiles/frames in prompt order
    temporal_features: torch.Tensor | None = None  # (N, D) float32
    meta: dict[str, Any] = field(default_factory=dict)


def items_from_batch(batch: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A list of item dicts, from a list or from a ``collate_keep_lists`` batch (dict of lists + task/size)."""
    if isinstance(batch, Mapping):
        size = (
            int(batch["size"]) if "size" in batch else len(next(iter(v for v in batch.values() if isinstance(v, list))))
        )
        items = []
        for i in range(size):
            item = {k: v[i] for k, v in batch.items() if isinstance(v, list)}
            item["task"] = batch["task"] if isinstance(batch.get("task"), str) else batch["task"][i]
            items.append(item)
        return items
    return [dict(item) for item in batch]


class Sa2vaSTProcessor:
    """Builds model inputs from dataset items with the VLM's own InternVL processor and tokenizer.

    ``processor`` is the checkpoint's ``InternVLProcessor`` (its tokenizer must already hold
    `MODEL_TOKENS`); ``num_tokens`` the temporal placeholders per video; ``max_image_tiles`` the
    dynamic-tiling limit for still images; ``max_length`` the training length limit (see Truncation;
    None: no limit).
    """

    def __init__(
        self, processor: Any, *, num_tokens: int, max_image_tiles: int = 1, max_length: int | None = None
    ) -> None:
        self.processor = processor
        self.max_length = None if max_length is None else int(max_length)
        self.tokenizer = processor.tokenizer
        self.image_processor = processor.image_processor
        self.num_tokens = int(num_tokens)
        self.max_image_tiles = int(max_image_tiles)
        self.image_seq_length = int(processor.image_seq_length)
        tok = self.tokenizer
        self.image_token_id = int(tok.convert_tokens_to_ids(processor.image_token))
        self.image_start_id = int(tok.convert_tokens_to_ids(processor.start_image_token))
        self.image_end_id = int(tok.convert_tokens_to_ids(processor.end_image_token))
        missing = [t for t in (*MODEL_TOKENS, IM_START, IM_END) if t not in tok.get_vocab()]
        if missing:
            raise ModelError(
                f"the tokenizer lacks {missing}",
                key="model.vlm",
                fix="build the model with Sa2vaSTModel.from_config (it adds the special tokens), or use a "
                "ChatML (Qwen-style) InternVL checkpoint",
            )
        self.temporal_token_id = int(tok.convert_tokens_to_ids(TEMPORAL_CONTEXT_TOKEN))
        self.im_end_id = int(tok.convert_tokens_to_ids(IM_END))
        pad = tok.pad_token_id
        self.pad_token_id = int(pad if pad is not None else self.im_end_id)
        self._text_cache: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ pieces

    def _text(self, text: str) -> list[int]:
        ids = self._text_cache.get(text)
        if ids is None:
            ids = list(self.tokenizer.encode(text, add_special_tokens=False))
            if len(self._text_cache) < 4096:  # the fixed prompt pieces repeat; sentences mostly do not
                self._text_cache[text] = ids
        return ids

    def _image_run(self, tiles: int) -> list[int]:
        return [self.image_start_id, *([self.image_token_id] * (self.image_seq_length * tiles)), self.image_end_id]

    def _pixels(self, images: Sequence[torch.Tensor], max_tiles: int) -> tuple[torch.Tensor, list[int]]:
        """uint8 (3, H, W) images → pixel_values (P, 3, s, s) and tiles per image."""
        tiled = max_tiles > 1
        out = self.image_processor(
            images=list(images), crop_to_patches=tiled, max_patches=max_tiles, return_tensors="pt"
        )
        counts = out.get("num_patches")
        counts = (
            [1] * len(images)
            if counts is None
            else [int(c) for c in (counts.tolist() if hasattr(counts, "tolist") else counts)]
        )
        return out["pixel_values"], counts

    @staticmethod
    def _sentence(item: Mapping[str, Any], key: str = "sentence") -> str:
        text = item.get(key)
        if not isinstance(text, str) or not text.strip():
            raise ModelError(f"item has no {key!r} text: {text!r}", key=key, fix="pass the dataset's item dict")
        return " ".join(text.split())

    def _conversation(
        self, first_user: list[int], questions: list[str], answers: list[str] | None
    ) -> tuple[list[int], list[int], int]:
        """ChatML turns → ids, labels and the number of turns kept; without answers the prompt ends with
        the generation prompt. With answers and ``max_length``, turns that do not fit are dropped from
        the end (see Truncation)."""
        ids: list[int] = []
        labels: list[int] = []

        def add(piece: list[int], learn: bool) -> None:
            ids.extend(piece)
            labels.extend(piece if learn else [IGNORE_INDEX] * len(piece))

        kept = 0
        for turn, question in enumerate(questions):
            before = len(ids)
            if turn:
                add(self._text("\n"), False)
            add(self._text(IM_START + "user\n"), False)
            if turn == 0:
                add(first_user, False)
                add(self._text("\n"), False)
            add(self._text(question) + self._text(IM_END + "\n" + IM_START + "assistant\n"), False)
            if answers is not None:
                add(self._text(answers[turn]) + [self.im_end_id], True)
                if self.max_length is not None and len(ids) > self.max_length:
                    if turn == 0:
                        raise SampleTooLongError(
                            f"the first turn alone is {len(ids)} tokens, over max_length {self.max_length}",
                            key="training.max_length",
                            fix="raise training.max_length, or use fewer image tiles (model.max_image_tiles) "
                            "or video frames",
                        )
                    del ids[before:], labels[before:]
                    break
            kept += 1
        return ids, labels, kept

    # ------------------------------------------------------------------ items

    def encode(self, item: Mapping[str, Any], *, with_answer: bool = True) -> EncodedSample:
        """One dataset item (image, video or temporal dict, see `sa2va_st.datasets`) → `EncodedSample`."""
        task = item.get("task")
        if task == IMAGE_GROUNDING:
            return self._encode_image(item, with_answer)
        if task == VIDEO_GROUNDING:
            return self._encode_video(item, with_answer)
        if task == TEMPORAL_GROUNDING:
            return self._encode_temporal(item, with_answer)
        raise ModelError(f"unknown task {task!r}", key="task", fix=f"items come from the datasets: one of {TASKS}")

    def _turns(self, item: Mapping[str, Any], with_answer: bool) -> tuple[list[str], list[str] | None]:
        """An item's sentences (a list, or one ``sentence``) and, for training, its answers (one per sentence)."""
        sentences = item.get("sentences")
        if sentences is None:
            sentences = [self._sentence(item)]
        sentences = [" ".join(str(s).split()) for s in sentences]
        if not sentences:
            raise ModelError("an item has no sentences", key="sentences")
        if not with_answer:
            if len(sentences) != 1:
                raise ModelError(
                    f"a generation prompt asks one question, got {len(sentences)} sentences",
                    key="sentences",
                    fix="make one item per expression (sentences=[expression])",
                )
            return sentences, None
        answers = list(item["answers"]) if "answers" in item else [item.get("answer")]
        if len(answers) != len(sentences):
            raise ModelError(f"{len(sentences)} sentences but {len(answers)} answers", key="answers")
        if any(answer is None for answer in answers):
            raise ModelError(
                "this item has no answer (a split without masks)",
                key="answers",
                fix="use such splits for evaluation only (with_answer=False)",
            )
        return sentences, answers

    def _encode_image(self, item: Mapping[str, Any], with_answer: bool) -> EncodedSample:
        sentences, answers = self._turns(item, with_answer)
        pixels, tiles = self._pixels([item["image"]], self.max_image_tiles)
        questions = [IMAGE_QUESTION.format(sentence=s) for s in sentences]
        ids, labels, kept = self._conversation(self._image_run(tiles[0]), questions, answers)
        return EncodedSample(IMAGE_GROUNDING, ids, labels, pixel_values=pixels, meta=self._kept(kept, questions))

    def _encode_video(self, item: Mapping[str, Any], with_answer: bool) -> EncodedSample:
        frames = item["frames"]  # (n, 3, H, W) uint8
        if frames.ndim != 4:
            raise ModelError(f"video frames must be (n, 3, H, W), got {tuple(frames.shape)}", key="frames")
        sentences, answers = self._turns(item, with_answer)
        pixels, _ = self._pixels(list(frames), 1)
        visual: list[int] = []
        for i in range(frames.shape[0]):
            if i:
                visual += self._text("\n")
            visual += self._text(f"Frame{i + 1}: ") + self._image_run(1)
        questions = [VIDEO_QUESTION.format(sentence=s) for s in sentences]
        ids, labels, kept = self._conversation(visual, questions, answers)  # every turn over the same frames
        return EncodedSample(VIDEO_GROUNDING, ids, labels, pixel_values=pixels, meta=self._kept(kept, questions))

    def _encode_temporal(self, item: Mapping[str, Any], with_answer: bool) -> EncodedSample:
        features = torch.as_tensor(np.asarray(item["features"]), dtype=torch.float32)  # (N, D)
        if features.ndim != 2 or features.shape[0] != self.num_tokens:
            raise ModelError(
                f"temporal features must be ({self.num_tokens}, D), got {tuple(features.shape)}",
                key="features",
                fix="build the dataset with num_positions equal to model.temporal.num_tokens",
            )
        visual = [self.temporal_token_id] * self.num_tokens
        question = TEMPORAL_QUESTION.format(sentence=self._sentence(item))
        answers = [item["answer"]] if with_answer else None
        ids, labels, kept = self._conversation(visual, [question], answers)
        return EncodedSample(
            TEMPORAL_GROUNDING, ids, labels, temporal_features=features, meta=self._kept(kept, [question])
        )

    @staticmethod
    def _kept(kept: int, questions: list[str]) -> dict[str, int]:
        return {"turns": kept, "dropped_turns": len(questions) - kept}

    # ------------------------------------------------------------------ batches

    def collate(self, samples: Sequence[EncodedSample], *, padding_side: str = "right") -> dict[str, Any]:
        """Pad to the longest sample; stack images and features in sample order."""
        if not samples:
            raise ModelError("an empty batch", key="batch")
        length = max(len(s.input_ids) for s in samples)
        b = len(samples)
        input_ids = torch.full((b, length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((b, length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((b, length), dtype=torch.long)
        for i, s in enumerate(samples):
            n = len(s.input_ids)
            span = slice(length - n, length) if padding_side == "left" else slice(0, n)
            input_ids[i, span] = torch.tensor(s.input_ids, dtype=torch.long)
            labels[i, span] = torch.tensor(s.labels, dtype=torch.long)
            attention_mask[i, span] = 1
        pixels = [s.pixel_values for s in samples if s.pixel_values is not None]
        features = [s.temporal_features for s in samples if s.temporal_features is not None]
        return {
            "input_ids": input_ids,  # (B, L)
            "attention_mask": attention_mask,  # (B, L)
            "labels": labels,  # (B, L), -100 outside answers
            "pixel_values": torch.cat(pixels) if pixels else None,  # (P, 3, s, s)
            "temporal_features": torch.stack(features) if features else None,  # (B_t, N, D)
            "task": [s.task for s in samples],
        }

    def __call__(self, batch: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Training inputs (answers labelled, right padding) for a list of items or a collated batch."""
        return self.collate([self.encode(item) for item in items_from_batch(batch)])

    def for_generation(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Prompts without answers, left-padded, ending with the assistant's turn (labels all -100)."""
        return self.collate([self.encode(item, with_answer=False) for item in items], padding_side="left")
