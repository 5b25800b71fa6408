"""SAM2 (transformers' native ``Sam2Model`` / ``Sam2VideoModel``) as a frozen, box-prompted segmenter.

The grounding model answers with boxes; masks come from SAM2 prompted by those boxes, the
Sa2VA inference scheme:

- **images** (RefCOCO/+/g cIoU/gIoU): `Sam2Segmenter.segment_image` prompts ``Sam2Model`` with
  every box of the image in one forward pass and returns one mask per box at the input size;
- **videos** (MeViS / Ref-YouTube-VOS / ReVOS J&F): `Sam2Segmenter.segment_video` prompts
  ``Sam2VideoModel`` with the box of each key frame (the frames the LLM answered for), then
  propagates the object through every frame with SAM2's memory (see the method for the order).

**Where the weights come from.** `load_sam2` takes a hub id (``facebook/sam2.1-hiera-tiny`` ...
``-large``) or a local folder in the same layout (``config.json`` + ``model.safetensors`` +
processor configs). The hub's SAM2.1 checkpoints are ``sam2_video`` checkpoints: one file holds
the image part (vision encoder, prompt encoder, mask decoder) *and* the video part (memory
attention, memory encoder, object pointers). Both models are loaded from that one checkpoint with
their own ``from_pretrained`` (``Sam2Model`` skips the memory weights by design), then the image
model's tensors are re-pointed at the video model's, so the weights are held once. A local folder
is opened with ``local_files_only=True`` unless told otherwise: nothing goes online for it.
One ``Sam2VideoProcessor`` serves both models (it preprocesses images and videos and
post-processes masks); it is what the hub checkpoints name in ``processor_config.json``.

**Frozen.** Every parameter has ``requires_grad=False``, both models are in eval mode and all
inference runs under ``torch.inference_mode``.

**Tiny preset.** Tests and the demo use a random SAM2 at 64 px (`sa2va_st.testing.tiny`), saved
with ``save_pretrained`` in exactly the hub layout, so it loads through the same `load_sam2` ->
``from_pretrained`` path as a real checkpoint.

Conventions: images and frames are uint8 RGB, channels first ``(3, H, W)`` per image (HWC and
PIL are accepted for single images); boxes are normalised ``[0, 1]`` ``x1, y1, x2, y2`` (the
grounding answer format); masks are ``bool`` at the input size.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..errors import ModelError
from .config import resolve_source

log = logging.getLogger(__name__)

DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}
HUB_EXAMPLE = "facebook/sam2.1-hiera-tiny"

# --- loading ---------------------------------------------------------------------------------


def _torch_dtype(device: torch.device, dtype: torch.dtype | str) -> torch.dtype:
    """The dtype actually used: as asked on a GPU, float32 on the CPU (half precision there is slow)."""
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ModelError(f"dtype must be one of {sorted(DTYPES)} or a torch dtype, got {dtype!r}", key="dtype")
        dtype = DTYPES[dtype]
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ModelError(f"dtype must be a floating dtype (float32, bfloat16, float16), got {dtype}", key="dtype")
    if device.type == "cpu" and dtype != torch.float32:
        log.warning("SAM2 dtype %s requested on the CPU; using float32", dtype)
        return torch.float32
    return dtype


def _from_pretrained(cls: Any, source: str, what: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained(source, **kwargs)``; errors (offline, missing files, wrong checkpoint) name the fix."""
    try:
        return cls.from_pretrained(source, **kwargs)
    except Exception as error:  # OSError, ValueError, EnvironmentError, huggingface_hub errors ...
        raise ModelError(
            f"transformers could not load the SAM2 {what} from {source!r}: {error}",
            file=source,
            fix=f"check the hub id / folder (a SAM2.1 checkpoint such as {HUB_EXAMPLE}); if this machine is "
            "offline, download it once elsewhere and point the config at the local folder",
        ) from error


def _check_loading_info(info: dict, source: str, what: str) -> None:
    """A checkpoint that lacks weights would leave them random: refuse it, naming the keys."""
    missing = sorted(info.get("missing_keys") or ())
    mismatched = sorted(str(k) for k in info.get("mismatched_keys") or ())
    if missing or mismatched:
        bad = missing or mismatched
        raise ModelError(
            f"the checkpoint does not hold every weight of the SAM2 {what}: "
            f"{len(missing)} missing, {len(mismatched)} of a different shape (first: {bad[:5]})",
            file=source,
            key=bad[0],
            fix=f"use a SAM2.1 checkpoint with the video (memory) weights, such as {HUB_EXAMPLE}; image-only "
            "`sam2` checkpoints cannot propagate masks through videos",
        )


def _share_weights(image_model: torch.nn.Module, video_model: torch.nn.Module, source: str) -> None:
    """Point every parameter/buffer of `image_model` at the equal tensor of `video_model` (held once)."""
    video_tensors = dict(itertools.chain(video_model.named_parameters(), video_model.named_buffers()))
    for name, param in list(image_model.named_parameters()) + list(image_model.named_buffers()):
        other = video_tensors.get(name)
        if other is None or other.shape != param.shape or other.dtype != param.dtype or not torch.equal(param, other):
            raise ModelError(
                f"the SAM2 image and video models disagree on {name} after loading the same checkpoint",
                file=source,
                key=name,
                fix="this transformers version lays SAM2 out differently; report it with the transformers version",
            )
        if isinstance(param, torch.nn.Parameter):
            param.data = other.data
        else:
            module_name, _, leaf = name.rpartition(".")
            image_model.get_submodule(module_name)._buffers[leaf] = other


def load_sam2(
    id_or_folder: str | os.PathLike,
    revision: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    local_files_only: bool | None = None,
) -> Sam2Segmenter:
    """A frozen `Sam2Segmenter` from a hub id or a local folder (``local_files_only`` defaults to True for a folder)."""
    from transformers import Sam2Model, Sam2VideoModel, Sam2VideoProcessor

    source, is_local = resolve_source(id_or_folder, "model.sam2", example=HUB_EXAMPLE)
    device = torch.device(device)
    dtype = _torch_dtype(device, dtype)
    if local_files_only is None:
        local_files_only = is_local
    hub = {"revision": revision, "local_files_only": local_files_only}

    video_model, info = _from_pretrained(
        Sam2VideoModel, source, "video model", dtype=dtype, output_loading_info=True, **hub
    )
    _check_loading_info(info, source, "video model")
    # the checkpoint's config is a `sam2_video` one: transformers warns that it builds a `sam2`
    # model from it, which is what it is made for (Sam2Model ignores the memory weights)
    image_model, info = _from_pretrained(Sam2Model, source, "image model", dtype=dtype, output_loading_info=True, **hub)
    _check_loading_info(info, source, "image model")
    for model in (video_model, image_model):
        model.requires_grad_(False)
        model.eval()
        model.to(device)
    _share_weights(image_model, video_model, source)  # after .to(): moving would copy them apart again
    processor = _from_pretrained(Sam2VideoProcessor, source, "processor", **hub)
    return Sam2Segmenter(image_model, video_model, processor, device=device, dtype=dtype, source=source)


# --- input checks ----------------------------------------------------------------------------


def _as_uint8_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise ModelError(f"{name} must be a uint8 tensor or array, got {type(value).__name__}", key=name)
    if value.dtype != torch.uint8:
        raise ModelError(
            f"{name} must be uint8 (0..255 RGB), got {value.dtype}",
            key=name,
            fix="pass decoded pixels, e.g. the dataset's `frames`, not normalised floats",
        )
    return value


def image_to_chw(image: Any) -> torch.Tensor:
    """(3, H, W) uint8 from a PIL image, or a uint8 tensor/array in CHW (first dim 3) or HWC (last dim 3)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency of the datasets
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1).contiguous()
    image = _as_uint8_tensor(image, "image")
    if image.ndim == 3 and image.shape[0] == 3:
        chw = image
    elif image.ndim == 3 and image.shape[-1] == 3:
        chw = image.permute(2, 0, 1)
    else:
        raise ModelError(
            f"image must be (3, H, W) or (H, W, 3) RGB, got shape {tuple(image.shape)}",
            key="image",
            fix="convert grey or RGBA images to RGB first",
        )
    if chw.shape[1] < 1 or chw.shape[2] < 1:
        raise ModelError(f"image is empty: shape {tuple(image.shape)}", key="image")
    return chw.contiguous()


def _check_box_values(boxes: torch.Tensor, name: str) -> None:
    """Finite, inside [0, 1], x1 <= x2 and y1 <= y2 for every row of a (K, 4) float tensor."""
    for i, box in enumerate(boxes.tolist()):
        if not all(math.isfinite(v) for v in box):
            raise ModelError(
                f"{name} row {i} is {box}: not finite",
                key=name,
                fix="a box is four finite numbers; a video key frame without a box is None",
            )
        if not all(0.0 <= v <= 1.0 for v in box):
            raise ModelError(
                f"{name} row {i} is {box}: a box is normalised to [0, 1]",
                key=name,
                fix="divide pixel coordinates by the image width/height (x1, y1, x2, y2 order)",
            )
        x1, y1, x2, y2 = box
        if x2 < x1 or y2 < y1:
            raise ModelError(
                f"{name} row {i} is {box}: x2 < x1 or y2 < y1",
                key=name,
                fix="boxes are x1, y1, x2, y2 (top-left then bottom-right corner)",
            )


def check_boxes(boxes: Any, name: str = "boxes") -> torch.Tensor:
    """(K, 4) float64 normalised x1, y1, x2, y2 boxes, checked (`ModelError` naming `name` otherwise)."""
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu()
    try:
        tensor = torch.as_tensor(np.asarray(boxes, dtype=np.float64))
    except (TypeError, ValueError) as error:
        raise ModelError(f"{name} must be a (K, 4) array of numbers: {error}", key=name) from error
    if tensor.numel() == 0:  # no box at all ([] or an empty (0, 4) array)
        return torch.zeros((0, 4), dtype=torch.float64)
    if tensor.ndim != 2 or tensor.shape[1] != 4:
        raise ModelError(
            f"{name} must have shape (K, 4), got {tuple(tensor.shape)}",
            key=name,
            fix="wrap a single box in a list: [[x1, y1, x2, y2]]",
        )
    _check_box_values(tensor, name)
    return tensor


def check_frames(frames: Any) -> torch.Tensor:
    """(T, 3, H, W) uint8 frames, T >= 1 (`ModelError` naming ``frames`` otherwise)."""
    frames = _as_uint8_tensor(frames, "frames")
    if frames.ndim != 4 or frames.shape[1] != 3 or min(frames.shape) < 1:
        raise ModelError(
            f"frames must have shape (T, 3, H, W) with T, H, W >= 1, got {tuple(frames.shape)}",
            key="frames",
            fix="stack RGB frames channels-first, as the video dataset returns them",
        )
    return frames.contiguous()


def check_key_frame_boxes(key_frame_boxes: Any, num_frames: int) -> dict[int, torch.Tensor]:
    """{frame index: (K, 4) float64 boxes} for the key frames with at least one box, sorted.

    A value may be one box (four numbers), a list of boxes (one per object), or None / [] (no box:
    ``<no_box>``; dropped)."""
    if not isinstance(key_frame_boxes, Mapping):
        raise ModelError(
            f"key_frame_boxes must be a mapping frame index -> box or None, got {type(key_frame_boxes).__name__}",
            key="key_frame_boxes",
        )
    prompts: dict[int, torch.Tensor] = {}
    for index, box in key_frame_boxes.items():
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise ModelError(f"key_frame_boxes keys are frame indices (int), got {index!r}", key="key_frame_boxes")
        if not 0 <= int(index) < num_frames:
            raise ModelError(
                f"key_frame_boxes has frame index {int(index)} but the video has {num_frames} frame(s)",
                key=f"key_frame_boxes[{int(index)}]",
                fix="key frame indices index into `frames` (0 .. T-1)",
            )
        if box is None or (isinstance(box, (list, tuple)) and len(box) == 0):
            continue
        flat = np.asarray(box, dtype=object)
        boxes = [box] if flat.ndim == 1 and len(flat) == 4 and not isinstance(flat[0], (list, tuple)) else box
        checked = check_boxes(boxes, f"key_frame_boxes[{int(index)}]")  # (K, 4)
        if checked.shape[0]:
            prompts[int(index)] = checked
    return dict(sorted(prompts.items()))


def video_objects(prompts: Mapping[int, torch.Tensor]) -> dict[int, dict[int, torch.Tensor]]:
    """{object id: {frame index: (4,) box}}: which boxes of the key frames are one object for SAM2.

    An answer lists a frame's objects in one order, so when every prompted frame has the same number
    of boxes, the k-th box of each is object k. Otherwise (an object absent from some key frames) the
    boxes cannot be paired safely, and each box becomes an object of its own: SAM2 tracks each from its
    own frame, and the union of their masks is the expression's mask either way.
    """
    counts = {boxes.shape[0] for boxes in prompts.values()}
    objects: dict[int, dict[int, torch.Tensor]] = {}
    if len(counts) == 1:
        for frame, boxes in prompts.items():
            for k, box in enumerate(boxes):
                objects.setdefault(k + 1, {})[frame] = box
        return objects
    for frame, boxes in prompts.items():
        for box in boxes:
            objects[len(objects) + 1] = {frame: box}
    return objects


def _pixel_boxes(boxes: torch.Tensor, height: int, width: int) -> list[list[float]]:
    """Normalised (K, 4) -> pixel x1, y1, x2, y2 lists (the processor rescales pixels to its input size)."""
    scale = torch.tensor([width, height, width, height], dtype=torch.float64)
    return (boxes * scale).tolist()


# --- the segmenter ---------------------------------------------------------------------------


class Sam2Segmenter:
    """Frozen SAM2: box-prompted masks for images and key-frame-prompted, propagated masks for videos.

    Built by `load_sam2`. ``image_model`` (``Sam2Model``) and ``video_model`` (``Sam2VideoModel``)
    share their image-part tensors; ``processor`` (``Sam2VideoProcessor``) serves both.
    """

    def __init__(self, image_model, video_model, processor, *, device: torch.device, dtype: torch.dtype, source: str):
        self.image_model = image_model
        self.video_model = video_model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.source = source

    @property
    def image_size(self) -> int:
        """The square side SAM2 resizes every image/frame to (1024 for the hub checkpoints)."""
        return int(self.processor.target_size)

    def num_parameters(self) -> int:
        """Distinct parameters held (shared image/video tensors counted once)."""
        seen: dict[int, int] = {}
        for model in (self.image_model, self.video_model):
            for param in model.parameters():
                seen[param.data_ptr()] = param.numel()
        return sum(seen.values())

    @torch.inference_mode()
    def segment_image(self, image: Any, boxes: Any) -> torch.Tensor:
        """bool masks (K, H, W) at the input size, one per normalised box of `boxes` (K, 4).

        All K boxes go through one ``Sam2Model`` forward with ``multimask_output=False``: a box is an
        unambiguous prompt, so SAM2 uses its single-mask token, and the hub configs'
        ``dynamic_multimask_via_stability`` falls back to the best (highest predicted IoU) of the three
        multimask outputs when that mask is unstable. This is also what ``Sam2VideoModel`` does for a
        box-prompted key frame (two prompt points > ``multimask_max_pt_num``), so image masks and video
        key-frame masks come from the same decoder path.
        """
        chw = image_to_chw(image)  # (3, H, W) uint8
        boxes = check_boxes(boxes)  # (K, 4) normalised
        height, width = int(chw.shape[1]), int(chw.shape[2])
        if boxes.shape[0] == 0:
            return torch.zeros((0, height, width), dtype=torch.bool)
        inputs = self.processor(
            images=chw,
            input_boxes=[_pixel_boxes(boxes, height, width)],
            input_data_format="channels_first",
            return_tensors="pt",
        )
        outputs = self.image_model(
            pixel_values=inputs["pixel_values"].to(self.device, self.dtype),  # (1, 3, S, S)
            input_boxes=inputs["input_boxes"].to(self.device),  # (1, K, 4) in S px, float32 like the video path
            multimask_output=False,
        )
        low_res = outputs.pred_masks.float().cpu()  # (1, K, 1, S/4, S/4) logits
        masks = self.processor.post_process_masks(low_res, inputs["original_sizes"])[0]  # (K, 1, H, W) bool
        return masks[:, 0]

    def expression_mask(self, image: Any, boxes: Any) -> torch.Tensor:
        """bool (H, W): the mask of an expression whose objects have these boxes, the union of their masks
        (all False without a box)."""
        masks = self.segment_image(image, boxes)  # (K, H, W)
        return masks.any(dim=0) if masks.shape[0] else torch.zeros(masks.shape[1:], dtype=torch.bool)

    @torch.inference_mode()
    def segment_video(self, frames: Any, key_frame_boxes: Mapping[int, Any]) -> torch.Tensor:
        """bool masks (T, H, W) of one expression: key-frame boxes prompt SAM2, its memory carries them to
        every frame, and the expression's mask is the union of its objects' masks.

        `frames` (T, 3, H, W) uint8; `key_frame_boxes` {frame index: the normalised box(es) of the
        expression's objects there (one box, or a list of them), or None / [] where the grounding
        answer was ``<no_box>``}. Each object (`video_objects`) is tracked on its own, as SAM2 tracks
        several objects in one session. Order, as in SAM2's own video predictor:

        1. each key frame with a box is a *conditioning frame*: its boxes prompt the decoder on that
           frame alone (no memory), and each object's mask, memory and object pointer are stored;
        2. forward propagation from the first key frame to the last frame: every other frame attends
           to the memories of all conditioning frames and of the frames tracked just before it;
           key frames keep their prompted output;
        3. if the first key frame is not frame 0, backward propagation from it to frame 0 covers the
           frames before it (same memory, in reverse time).

        Frames where SAM2's object score says "absent" come back all False (SAM2 replaces their
        logits by -1024). No key frame with a box: all False, without running the model.
        """
        frames = check_frames(frames)  # (T, 3, H, W) uint8
        num_frames, _, height, width = (int(s) for s in frames.shape)
        prompts = check_key_frame_boxes(key_frame_boxes, num_frames)  # {t: (4,)}
        masks = torch.zeros((num_frames, height, width), dtype=torch.bool)
        if not prompts:
            return masks

        session = self.processor.init_video_session(
            video=frames,
            inference_device=self.device,
            video_storage_device="cpu",  # preprocessed frames wait on the host, one at a time on the device
            dtype=self.dtype,
        )
        objects = video_objects(prompts)
        for frame_idx in prompts:
            ids = [obj for obj, boxes in objects.items() if frame_idx in boxes]
            stacked = torch.stack([objects[obj][frame_idx] for obj in ids])  # (K_t, 4)
            self.processor.add_inputs_to_inference_session(
                inference_session=session,
                frame_idx=frame_idx,
                obj_ids=ids,
                input_boxes=[_pixel_boxes(stacked, height, width)],  # [[[x1, y1, x2, y2] per object]] in px
            )
            self.video_model(inference_session=session, frame_idx=frame_idx)  # conditioning output

        first = next(iter(prompts))
        logits: dict[int, torch.Tensor] = {}  # frame -> (objects, 1, S/4, S/4)
        for output in self.video_model.propagate_in_video_iterator(session, start_frame_idx=first):
            logits[int(output.frame_idx)] = output.pred_masks
        if first > 0:
            for output in self.video_model.propagate_in_video_iterator(session, start_frame_idx=first, reverse=True):
                logits[int(output.frame_idx)] = output.pred_masks
        if sorted(logits) != list(range(num_frames)):
            raise ModelError(  # an invariant of the two passes above; a transformers change could break it
                f"SAM2 propagation returned frames {sorted(logits)} for a {num_frames}-frame video",
                fix="report it with the transformers version",
            )

        per_object = torch.stack([logits[t] for t in range(num_frames)]).float().cpu()  # (T, objects, 1, h, w)
        t_, o_ = per_object.shape[:2]
        flat = per_object.reshape(t_ * o_, *per_object.shape[2:])  # (T * objects, 1, h, w)
        masks = self.processor.post_process_masks([flat], original_sizes=[[height, width]])[0]  # (T*objects, 1, H, W)
        return masks[:, 0].reshape(t_, o_, height, width).any(dim=1)  # the union of the objects' masks
