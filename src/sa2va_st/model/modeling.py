"""`Sa2vaSTModel`: an HF-native InternVL with LoRA, the Sa2VA special tokens and a temporal projector.

Built from transformers parts, so any ``InternVLForConditionalGeneration`` checkpoint plugs in
(default ``OpenGVLab/InternVL3_5-4B-HF``; the tiny preset in tests and the demo):

- **tokens**: `MODEL_TOKENS` (upstream's special tokens in upstream order, then
  ``<TEMPORAL_CONTEXT>``) are added to the tokenizer; the embedding matrix and lm_head grow only
  when the tokenizer outgrows them (a checkpoint whose vocabulary is padded, as Qwen's, keeps its
  size and the new ids take unused rows). The rows of the new tokens start as the mean of the
  existing rows (deterministic, and on the scale of real tokens).
- **LoRA** (peft) on the language model's ``lora.target_modules`` only: the module regex requires
  ``language_model`` in the name, since InternVL's vision tower has ``q_proj``/``k_proj``/``v_proj`` too.
- **trainable** exactly what ``config.train`` says: LoRA adapters, the multimodal projector, the
  whole input embedding matrix (upstream trains "token embeddings"; the new rows included), the
  lm_head, the temporal projector. The vision tower and every base LLM weight are frozen; the
  vision tower stays in eval mode even in ``train()``. `trainable_parameters` lists them.
- **temporal projector** (`TemporalProjector`): each CLIP feature → one LLM token; the N outputs
  replace the embeddings of the N ``<TEMPORAL_CONTEXT>`` placeholders, exactly as InternVL puts image
  features at ``<IMG_CONTEXT>`` (both are scattered here, into one ``inputs_embeds``).

`forward` takes the batch of `Sa2vaSTProcessor` (either task) and returns the LM loss over the
answer tokens, and the loss per task for logging. The logits are only computed at the answer
positions (the vocabulary is 152k wide; answers are a few percent of the tokens), unless
``return_logits=True``. Inference (`ground_boxes`, `ground_window`, batched versions) lives in
`sa2va_st.model.inference`; saving and export in `sa2va_st.model.checkpoint`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .config import Sa2vaSTConfig
from .prompts import IGNORE_INDEX, MODEL_TOKENS, TASKS, Sa2vaSTProcessor

TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def effective_dtype(config: Sa2vaSTConfig, device: str | torch.device) -> torch.dtype:
    """``config.dtype`` on a GPU; float32 on the CPU (half precision there is slow or unsupported)."""
    return torch.float32 if torch.device(device).type == "cpu" else TORCH_DTYPES[config.dtype]


class ResidualBlock(nn.Module):
    """``x + GELU(LayerNorm(W x))`` at width ``dim``: one of the projector's residual blocks."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.act = nn.GELU()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (..., dim) -> (..., dim)
        return hidden + self.act(self.norm(self.linear(hidden)))


class TemporalProjector(nn.Module):
    """CLIP features (B, N, clip_dim) → LLM input tokens (B, N, H), H the LLM width: upstream's architecture.

    Upstream (``spatial_temporal_mllm``) builds it for its 2048-wide LLM as Linear 1024→2048, three
    residual blocks at 2048, Linear 2048→4096, LayerNorm, GELU, Dropout 0.1, Linear 4096→2048 and a
    final LayerNorm, with no normalisation of the input. Here the same layers are sized by the LLM in
    use: its widths 2048 and 4096 are H and 2H (H = 2048 gives upstream's projector exactly; the
    InternVL3.5-4B default, H = 2560, a proportionally wider one)::

        features (B, N, C)
          -> Linear C→H                     (B, N, H)
          -> 3 x [x + GELU(LN(Linear H→H x))] (B, N, H)
          -> Linear H→2H, LN, GELU, Dropout (B, N, 2H)
          -> Linear 2H→H, LN                (B, N, H)
    """

    NUM_BLOCKS = 3

    def __init__(self, clip_dim: int, hidden_size: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.clip_dim, self.hidden_size = int(clip_dim), int(hidden_size)
        wide = 2 * self.hidden_size
        self.input = nn.Linear(self.clip_dim, self.hidden_size)
        self.blocks = nn.ModuleList(ResidualBlock(self.hidden_size) for _ in range(self.NUM_BLOCKS))
        self.expand = nn.Sequential(
            nn.Linear(self.hidden_size, wide), nn.LayerNorm(wide), nn.GELU(), nn.Dropout(dropout)
        )
        self.output = nn.Linear(wide, self.hidden_size)
        self.norm = nn.LayerNorm(self.hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != self.clip_dim:
            raise ModelError(
                f"temporal features are {features.shape[-1]}-d, the projector takes {self.clip_dim}-d",
                key="model.temporal.clip_dim",
                fix="extract the features with the CLIP model the model was configured for, or set clip_dim",
            )
        hidden = self.input(features)  # (B, N, H)
        for block in self.blocks:
            hidden = block(hidden)  # (B, N, H)
        return self.norm(self.output(self.expand(hidden)))  # (B, N, 2H) -> (B, N, H)


@dataclass
class Sa2vaSTOutput:
    """``loss``: mean cross-entropy over all answer tokens of the batch (what is optimised);
    ``task_loss_sums`` / ``task_tokens`` (len(TASKS),): the summed token loss and the answer tokens of
    each task in `TASKS` order, detached tensors on the model's device, so that a trainer can add them
    up over steps and ranks without a host sync per step (`task_losses` turns them into means);
    ``logits`` (B, L, V) only with ``return_logits=True``."""

    loss: torch.Tensor | None
    task_loss_sums: torch.Tensor | None = None
    task_tokens: torch.Tensor | None = None
    logits: torch.Tensor | None = None

    @property
    def task_losses(self) -> dict[str, float]:
        """Mean token loss of each task present in the batch (floats: a host sync; for logging and tests)."""
        if self.task_loss_sums is None or self.task_tokens is None:
            return {}
        sums, tokens = self.task_loss_sums.tolist(), self.task_tokens.tolist()
        return {task: s / n for task, s, n in zip(TASKS, sums, tokens) if n > 0}


def lora_target_regex(target_modules: Sequence[str]) -> str:
    """peft ``target_modules`` as a regex (full match): the named layers inside ``language_model`` only."""
    names = "|".join(sorted(set(target_modules)))
    return rf".*\blanguage_model\..*\.(?:{names})"


def add_model_tokens(vlm: nn.Module, tokenizer: Any) -> list[str]:
    """Add `MODEL_TOKENS` to ``tokenizer`` (in order) and make room for them in ``vlm``; return the new ones.

    Tokens already present keep their ids (a tokenizer saved by this project already has them all).
    The embedding matrix and lm_head grow to ``len(tokenizer)`` when needed (never shrink), and the
    rows of newly added tokens are set to the mean of the rows before them.
    """
    vocab = tokenizer.get_vocab()
    new = [t for t in MODEL_TOKENS if t not in vocab]
    if not new:
        return []
    tokenizer.add_tokens(new, special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids(list(MODEL_TOKENS))
    if ids != sorted(ids):
        raise ModelError(
            f"the special tokens got ids {ids}, not in upstream order",
            key="model.vlm",
            fix="start from a tokenizer that has none of them, or all of them in upstream's order",
        )
    embeddings = vlm.get_input_embeddings()
    if len(tokenizer) > embeddings.weight.shape[0]:
        vlm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    new_ids = torch.tensor(tokenizer.convert_tokens_to_ids(new), dtype=torch.long)
    first = int(new_ids.min())
    with torch.no_grad():
        for matrix in {
            id(m): m for m in (vlm.get_input_embeddings().weight, vlm.get_output_embeddings().weight)
        }.values():
            matrix[new_ids] = matrix[:first].float().mean(0).to(matrix.dtype)
    return new


class Sa2vaSTModel(nn.Module):
    """The spatial-temporal grounding model; see the module docstring.

    ``vlm`` is an ``InternVLForConditionalGeneration`` (or a peft model around one) whose
    tokenizer (in ``processor``, the checkpoint's ``InternVLProcessor``, kept as ``hf_processor``)
    already holds `MODEL_TOKENS`; ``self.processor`` is the `Sa2vaSTProcessor` that turns dataset
    items into batches. Use `from_config` to build one from a hub id or folder;
    `sa2va_st.model.checkpoint` to save, load and export.
    """

    def __init__(
        self,
        config: Sa2vaSTConfig,
        vlm: nn.Module,
        processor: Any,
        temporal_projector: TemporalProjector | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.vlm = vlm
        self.hf_processor = processor
        self.processor = Sa2vaSTProcessor(
            processor, num_tokens=config.temporal.num_tokens, max_image_tiles=config.max_image_tiles
        )
        hidden = self.internvl.config.text_config.hidden_size
        self.temporal_projector = temporal_projector or TemporalProjector(
            config.temporal.clip_dim, hidden, config.temporal.dropout
        )
        self.temporal_projector.to(device=self.device, dtype=self.dtype)
        image_token_id = self.internvl.config.image_token_id
        if image_token_id != self.processor.image_token_id:
            raise ModelError(
                f"the model's image_token_id {image_token_id} is not the tokenizer's "
                f"{self.hf_processor.image_token} id {self.processor.image_token_id}",
                key="model.vlm",
                fix="load the model and its processor from the same checkpoint",
            )

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_config(cls, config: Sa2vaSTConfig, *, device: str | torch.device = "cpu", seed: int = 0) -> Sa2vaSTModel:
        """Load the VLM and its processor (hub id or folder, same ``from_pretrained`` path), add the
        special tokens, attach LoRA and the temporal projector, set what trains. Same seed, same model."""
        vlm, processor = load_vlm(config, device=device)
        add_model_tokens(vlm, processor.tokenizer)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if config.train.lora:
                vlm = attach_lora(vlm, config)
            model = cls(config, vlm, processor)
        model.configure_trainable()
        return model.to(device)

    @property
    def internvl(self) -> nn.Module:
        """The ``InternVLForConditionalGeneration`` itself (inside the peft wrapper, LoRA layers in place)."""
        vlm = self.vlm
        return vlm.get_base_model() if hasattr(vlm, "get_base_model") else vlm

    @property
    def device(self) -> torch.device:
        return self.internvl.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.internvl.get_input_embeddings().weight.dtype

    @property
    def tokenizer(self) -> Any:
        return self.hf_processor.tokenizer

    # ------------------------------------------------------------------ what trains

    def _trainable_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Parameters by part (names as in ``self.named_parameters()``), whatever requires_grad is now."""
        internvl = self.internvl
        embed = internvl.get_input_embeddings().weight
        head = internvl.get_output_embeddings().weight
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {
            "lora": [],
            "projector": [],
            "embeddings": [],
            "lm_head": [],
            "temporal_projector": [],
        }
        projector = {id(p) for p in internvl.model.multi_modal_projector.parameters()}
        temporal = {id(p) for p in self.temporal_projector.parameters()}
        for name, param in self.named_parameters():
            if "lora_" in name:
                groups["lora"].append((name, param))
            elif id(param) in projector:
                groups["projector"].append((name, param))
            elif id(param) in temporal:
                groups["temporal_projector"].append((name, param))
            # tied embeddings (one matrix for both) belong to both parts: either flag trains it
            if param is embed:
                groups["embeddings"].append((name, param))
            if param is head:
                groups["lm_head"].append((name, param))
        return groups

    def configure_trainable(self) -> None:
        """Freeze everything, then unfreeze exactly the parts ``config.train`` names."""
        for param in self.parameters():
            param.requires_grad_(False)
        for name in self.expected_trainable_names():
            self.get_parameter(name).requires_grad_(True)
        self.internvl.model.vision_tower.eval()

    def expected_trainable_names(self) -> set[str]:
        """The parameter names ``config.train`` makes trainable (for checks and checkpoints)."""
        return {
            name
            for part, params in self._trainable_groups().items()
            if getattr(self.config.train, part)
            for name, _ in params
        }

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {name: p for name, p in self.named_parameters() if p.requires_grad}

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per part (lora, projector, ...), ``trainable``, ``frozen`` and ``total``."""
        counts = {part: sum(p.numel() for _, p in params) for part, params in self._trainable_groups().items()}
        counts["trainable"] = sum(p.numel() for p in self.parameters() if p.requires_grad)
        counts["total"] = sum(p.numel() for p in self.parameters())
        counts["frozen"] = counts["total"] - counts["trainable"]
        return counts

    def train(self, mode: bool = True) -> Sa2vaSTModel:
        super().train(mode)
        self.internvl.model.vision_tower.eval()  # frozen: no dropout / batch statistics there, ever
        return self

    # ------------------------------------------------------------------ forward

    def embed_inputs(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        temporal_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, L) ids → (B, L, H) input embeddings, image features at ``<IMG_CONTEXT>`` and projected
        temporal features at ``<TEMPORAL_CONTEXT>`` (row-major: sample by sample, then position)."""
        internvl = self.internvl
        embeds = internvl.get_input_embeddings()(input_ids)  # (B, L, H)
        image_mask = input_ids == self.processor.image_token_id  # (B, L)
        n_image = int(image_mask.sum())
        if pixel_values is not None:
            features = internvl.model.get_image_features(
                pixel_values=pixel_values.to(device=embeds.device, dtype=embeds.dtype), return_dict=True
            ).pooler_output  # (P, S, H); the frozen tower records no graph, the projector does
            if features.shape[0] * features.shape[1] != n_image:
                raise ModelError(
                    f"{n_image} <IMG_CONTEXT> tokens in the batch but {features.shape[0]} tiles x "
                    f"{features.shape[1]} image features",
                    key="pixel_values",
                    fix="build the batch with Sa2vaSTProcessor (tiles per image and image_seq_length must agree)",
                )
            embeds = embeds.masked_scatter(image_mask.unsqueeze(-1), features.to(embeds.dtype))
        elif n_image:
            raise ModelError(f"{n_image} <IMG_CONTEXT> tokens but no pixel_values", key="pixel_values")

        temporal_mask = input_ids == self.processor.temporal_token_id  # (B, L)
        per_row = temporal_mask.sum(dim=1)  # (B,)
        rows = int((per_row > 0).sum())
        n = self.config.temporal.num_tokens
        if temporal_features is not None:
            if temporal_features.ndim != 3 or temporal_features.shape[0] != rows or temporal_features.shape[1] != n:
                raise ModelError(
                    f"temporal_features {tuple(temporal_features.shape)} for {rows} samples with "
                    f"<TEMPORAL_CONTEXT> placeholders (model.temporal.num_tokens = {n})",
                    key="temporal_features",
                    fix="pass one (num_tokens, clip_dim) feature table per temporal sample, in batch order",
                )
            if bool((per_row[per_row > 0] != n).any()):
                raise ModelError(
                    f"a sample holds {per_row.tolist()} <TEMPORAL_CONTEXT> tokens, expected {n} each",
                    key="input_ids",
                    fix="build the batch with Sa2vaSTProcessor; do not truncate prompts",
                )
            tokens = self.temporal_projector(temporal_features.to(device=embeds.device, dtype=embeds.dtype))
            embeds = embeds.masked_scatter(temporal_mask.unsqueeze(-1), tokens)  # (B_t, N, H) into the slots
        elif rows:
            raise ModelError("<TEMPORAL_CONTEXT> tokens but no temporal_features", key="temporal_features")
        return embeds

    @staticmethod
    def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
        """Positions counted over real tokens only, as ``generate`` counts them (left or right padding)."""
        return (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        temporal_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The language model's last hidden states (B, L, H)."""
        embeds = self.embed_inputs(input_ids, pixel_values, temporal_features)
        out = self.internvl.model.language_model(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=self.position_ids(attention_mask),
            use_cache=False,
        )
        return out.last_hidden_state

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        temporal_features: torch.Tensor | None = None,
        task: Sequence[str] | str | None = None,
        return_logits: bool = False,
        **_: Any,
    ) -> Sa2vaSTOutput:
        """LM loss over the labelled (answer) tokens, and per task; see `Sa2vaSTOutput`.

        Takes the dict `Sa2vaSTProcessor` returns (``model(**batch)``); other keys are ignored.
        """
        device = self.device
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        hidden = self.hidden_states(input_ids, attention_mask, pixel_values, temporal_features)  # (B, L, H)
        head = self.internvl.get_output_embeddings()
        logits = head(hidden) if return_logits else None  # (B, L, V)
        if labels is None:
            return Sa2vaSTOutput(loss=None, logits=logits)

        labels = labels.to(device)
        target = labels[:, 1:]  # token t predicts label t + 1
        valid = target != IGNORE_INDEX  # (B, L-1)
        if not bool(valid.any()):
            raise ModelError("the batch has no labelled token", key="labels", fix="items need answers in training")
        picked = hidden[:, :-1][valid]  # (T, H)
        token_logits = (logits[:, :-1][valid] if logits is not None else head(picked)).float()  # (T, V)
        token_loss = F.cross_entropy(token_logits, target[valid], reduction="none")  # (T,)
        loss = token_loss.mean()

        tasks = [task] * input_ids.shape[0] if isinstance(task, str) or task is None else list(task)
        unknown = sorted({str(t) for t in tasks} - set(TASKS))
        if unknown:
            raise ModelError(f"unknown task(s) {unknown} in the batch", key="task", fix=f"one of {TASKS}")
        row_task = torch.tensor([TASKS.index(t) for t in tasks], device=device)  # (B,)
        token_task = row_task[valid.nonzero()[:, 0]]  # (T,)
        with torch.no_grad():
            sums = torch.zeros(len(TASKS), device=device).index_add_(0, token_task, token_loss.detach())
            tokens = torch.bincount(token_task, minlength=len(TASKS)).float()
        return Sa2vaSTOutput(loss=loss, task_loss_sums=sums, task_tokens=tokens, logits=logits)

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def generate_text(self, batch: Mapping[str, Any], max_new_tokens: int = 64) -> list[str]:
        """Greedy answers for a `Sa2vaSTProcessor.for_generation` batch (left-padded), decoded with the
        special tokens kept (the answer decoders read ``<next>``, ``<frame_3>``...), end-of-turn removed."""
        device = self.device
        input_ids = batch["input_ids"].to(device)
        attention_mask = batch["attention_mask"].to(device)
        embeds = self.embed_inputs(input_ids, batch.get("pixel_values"), batch.get("temporal_features"))
        tok = self.tokenizer
        stop = [self.processor.im_end_id]
        if tok.eos_token_id is not None and tok.eos_token_id not in stop:
            stop.append(int(tok.eos_token_id))
        was_training = self.training
        self.eval()
        try:
            out = self.internvl.generate(
                inputs_embeds=embeds,
                attention_mask=attention_mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                eos_token_id=stop,
                pad_token_id=self.processor.pad_token_id,
            )  # (B, new): with inputs_embeds only, generate returns the new tokens
        finally:
            self.train(was_training)
        texts = []
        for row in out.tolist():
            while row and row[-1] == self.processor.pad_token_id:
                row.pop()
            if row and row[-1] in stop:
                row.pop()
            texts.append(tok.decode(row, skip_special_tokens=False))
        return texts

    # ------------------------------------------------------------------ inference API (model.inference)

    def ground_boxes(self, frames: Any, expression: str, **kwargs: Any):
        from .inference import ground_boxes

        return ground_boxes(self, frames, expression, **kwargs)

    def ground_window(self, features: Any, duration: float, query: str, **kwargs: Any):
        from .inference import ground_window

        return ground_window(self, features, duration, query, **kwargs)


def load_vlm(config: Sa2vaSTConfig, *, device: str | torch.device = "cpu") -> tuple[nn.Module, Any]:
    """``InternVLForConditionalGeneration`` and its ``InternVLProcessor`` from a hub id or a folder.

    One ``from_pretrained`` path for both (``revision``, ``local_files_only`` from the config;
    a local folder never goes online unless ``local_files_only: false``).
    """
    from transformers import AutoConfig, AutoProcessor, InternVLForConditionalGeneration

    source, _ = config.source()
    hub = config.hub_kwargs()
    try:
        hf_config = AutoConfig.from_pretrained(source, **hub)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load the model config of {source!r}: {exc}",
            key="model.vlm",
            fix="check the hub id / revision (and HF_TOKEN, HF_ENDPOINT), or point model.vlm at a downloaded folder",
        ) from exc
    if getattr(hf_config, "model_type", None) != "internvl":
        raise ModelError(
            f"{source!r} is a {getattr(hf_config, 'model_type', '?')!r} checkpoint, not an HF-native InternVL",
            key="model.vlm",
            fix="use an InternVLForConditionalGeneration checkpoint (the -hf / -HF repos, e.g. OpenGVLab/InternVL3_5-4B-HF)",
        )
    dtype = effective_dtype(config, device)
    processor = AutoProcessor.from_pretrained(source, **hub)
    vlm = InternVLForConditionalGeneration.from_pretrained(source, dtype=dtype, **hub)
    return vlm, processor


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """peft 0.21 reads transformers 5's deprecated ``is_gradient_checkpointing``: a FutureWarning
    on every wrap that nobody here can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def attach_lora(vlm: nn.Module, config: Sa2vaSTConfig) -> nn.Module:
    """A peft model around ``vlm`` with LoRA on the language model's ``config.lora.target_modules``."""
    from peft import LoraConfig, get_peft_model

    settings = config.lora
    lora = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=lora_target_regex(settings.target_modules),
        bias="none",
    )
    with quiet_peft():
        model = get_peft_model(vlm, lora)
    found = sum(1 for name, _ in model.named_modules() if name.endswith(".lora_A"))
    if not found:
        raise ModelError(
            f"no layer of the language model matches lora.target_modules {list(settings.target_modules)}",
            key="model.lora.target_modules",
            fix="name linear layers of the LLM (Qwen: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj)",
        )
    return model
