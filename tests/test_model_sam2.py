"""SAM2 (model.sam2): the tiny checkpoint, loading through from_pretrained, box-prompted image masks,
key-frame prompting + propagation through videos, and the errors bad inputs raise.

A random tiny model cannot segment, so these tests check shapes, dtypes, determinism, that the
weights come from the folder, and that each code path really ran (key-frame masks are the
box-prompted decoder output, propagated frames depend on the key-frame prompt, frames before the
first key frame are filled by the backward pass).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.torch
import torch
import transformers
from PIL import Image

from sa2va_st.errors import ModelError
from sa2va_st.model.sam2 import Sam2Segmenter, load_sam2
from sa2va_st.testing.tiny import SAM2_IMAGE_SIZE as TINY_IMAGE_SIZE
from sa2va_st.testing.tiny import save_tiny_preset

BOX_A = [0.1, 0.1, 0.5, 0.6]
BOX_B = [0.3, 0.2, 0.9, 0.95]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory):
    return save_tiny_preset(tmp_path_factory.mktemp("sam2") / "tiny", 0, ["sam2"])["sam2"]


@pytest.fixture(scope="module")
def sam2(tiny_dir) -> Sam2Segmenter:
    return load_sam2(str(tiny_dir))


def random_image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def moving_square(num_frames: int = 5, height: int = 48, width: int = 80) -> torch.Tensor:
    """(T, 3, H, W) uint8: a white square moving right over noise; its box per frame is `square_box(t)`."""
    frames = torch.randint(
        0, 60, (num_frames, 3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(3)
    )
    for t in range(num_frames):
        frames[t, :, 10:30, 5 + 10 * t : 25 + 10 * t] = 255
    return frames


def square_box(t: int, height: int = 48, width: int = 80) -> list[float]:
    return [(5 + 10 * t) / width, 10 / height, (25 + 10 * t) / width, 30 / height]


# --- the tiny checkpoint ------------------------------------------------------------------------


def test_tiny_folder_has_the_hub_layout_and_no_pickles(tiny_dir):
    assert sorted(p.name for p in tiny_dir.iterdir()) == ["config.json", "model.safetensors", "processor_config.json"]
    config = json.loads((tiny_dir / "config.json").read_text())
    # like facebook/sam2.1-hiera-*: one sam2_video checkpoint serving Sam2Model and Sam2VideoModel
    assert config["model_type"] == "sam2_video"
    assert config["architectures"] == ["Sam2VideoModel"]
    assert config["image_size"] == TINY_IMAGE_SIZE
    processor = json.loads((tiny_dir / "processor_config.json").read_text())
    assert processor["processor_class"] == "Sam2VideoProcessor"
    assert processor["target_size"] == TINY_IMAGE_SIZE


def test_tiny_checkpoint_is_deterministic_for_a_seed(tiny_dir, tmp_path):
    again = save_tiny_preset(tmp_path / "again", 0, ["sam2"])["sam2"]
    other = save_tiny_preset(tmp_path / "other", 1, ["sam2"])["sam2"]
    weights = (tiny_dir / "model.safetensors").read_bytes()
    assert (again / "model.safetensors").read_bytes() == weights
    assert (other / "model.safetensors").read_bytes() != weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "other"]  # no staging leftovers


def test_the_testing_cli_writes_the_same_tiny_presets(tiny_dir, tmp_path):
    """`python -m sa2va_st.testing tiny` is the one tiny-preset writer's command line: same seed, same bytes."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "sa2va_st.testing", "tiny", "--out", str(tmp_path / "cli")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == ["clip", "sam2", "vlm"]
    assert (tmp_path / "cli" / "sam2" / "model.safetensors").read_bytes() == (
        tiny_dir / "model.safetensors"
    ).read_bytes()
    clip = save_tiny_preset(tmp_path / "direct", 0, ["clip"])["clip"]
    for name in ("open_clip_config.json", "open_clip_model.safetensors"):
        assert (tmp_path / "cli" / "clip" / name).read_bytes() == (clip / name).read_bytes()


# --- loading ---------------------------------------------------------------------------------------


def test_folder_loads_through_from_pretrained_offline(tiny_dir, offline, monkeypatch):
    calls = []
    for cls in (transformers.Sam2Model, transformers.Sam2VideoModel, transformers.Sam2VideoProcessor):
        original = cls.from_pretrained.__func__

        def spy(klass, source, *args, _original=original, **kwargs):
            calls.append((klass.__name__, source, kwargs.get("local_files_only"), kwargs.get("revision")))
            return _original(klass, source, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    segmenter = load_sam2(str(tiny_dir))
    folder = str(tiny_dir.resolve())
    assert sorted(calls) == [
        ("Sam2Model", folder, True, None),
        ("Sam2VideoModel", folder, True, None),
        ("Sam2VideoProcessor", folder, True, None),
    ]
    # the weights are the file's (not a fresh random init), in both models
    stored = safetensors.torch.load_file(str(tiny_dir / "model.safetensors"))
    video_state = segmenter.video_model.state_dict()
    image_state = segmenter.image_model.state_dict()
    assert set(stored) <= set(video_state)
    for name, tensor in stored.items():
        assert torch.equal(video_state[name], tensor), name
        if name in image_state:
            assert torch.equal(image_state[name], tensor), name
    assert set(image_state) < set(stored)  # the image model is the checkpoint's image part


def test_models_are_frozen_and_share_the_image_weights(sam2):
    for model in (sam2.image_model, sam2.video_model):
        assert not model.training
        assert all(not p.requires_grad for p in model.parameters())
    video_storage = {p.data_ptr() for p in sam2.video_model.parameters()}
    image_params = list(sam2.image_model.parameters())
    assert image_params and all(p.data_ptr() in video_storage for p in image_params)
    # one copy of the weights: the image model adds no parameters of its own
    assert sam2.num_parameters() == sum(p.numel() for p in sam2.video_model.parameters())
    assert 100_000 < sam2.num_parameters() < 2_000_000
    image = random_image(48, 80)
    before = sam2.segment_image(image, [BOX_A])
    assert sam2.segment_image(image, [BOX_A]).equal(before)  # inference leaves no state behind


def test_half_precision_falls_back_to_float32_on_the_cpu(tiny_dir):
    segmenter = load_sam2(tiny_dir, dtype="bf16")
    assert segmenter.dtype == torch.float32
    assert {p.dtype for p in segmenter.video_model.parameters()} == {torch.float32}


@pytest.mark.parametrize(
    ("source", "message"),
    [("does/not/exist", "not found"), ("./missing-sam2", "not found")],
)
def test_missing_folder_raises(source, message):
    with pytest.raises(ModelError, match=message):
        load_sam2(source)


def test_folder_without_config_raises(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match="config.json"):
        load_sam2(tmp_path)


def test_bad_dtype_raises(tiny_dir):
    with pytest.raises(ModelError, match="dtype") as error:
        load_sam2(tiny_dir, dtype="int8")
    assert error.value.key == "dtype"


def test_image_only_checkpoint_is_refused(sam2, tmp_path):
    # a `sam2` (image-only) checkpoint has no memory weights: propagation would run on random ones
    folder = tmp_path / "image-only"
    sam2.image_model.save_pretrained(folder)
    sam2.processor.save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["model_type"] == "sam2"
    with pytest.raises(ModelError, match="video") as error:
        load_sam2(folder)
    assert error.value.key in sam2.video_model.state_dict()  # a video-only weight is named
    assert error.value.key not in sam2.image_model.state_dict()


# --- images ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(48, 80), (101, 37), (64, 64)])
@pytest.mark.parametrize("boxes", [[BOX_A], [BOX_A, BOX_B, [0.0, 0.0, 1.0, 1.0]]])
def test_image_masks_have_the_input_size(sam2, height, width, boxes):
    masks = sam2.segment_image(random_image(height, width), boxes)
    assert masks.dtype == torch.bool
    assert masks.shape == (len(boxes), height, width)
    assert masks.any() and not masks.all()  # the random decoder gives neither nothing nor everything


def test_image_masks_are_deterministic_and_follow_the_box(sam2):
    image = random_image(48, 80)
    masks = sam2.segment_image(image, [BOX_A, BOX_B])
    assert sam2.segment_image(image, np.array([BOX_A, BOX_B])).equal(masks)
    assert sam2.segment_image(image, torch.tensor([BOX_A])).equal(masks[:1])
    assert not masks[0].equal(masks[1])  # a different prompt, a different mask


def test_image_layouts_give_the_same_masks(sam2):
    chw = random_image(48, 80)
    masks = sam2.segment_image(chw, [BOX_A])
    assert sam2.segment_image(chw.permute(1, 2, 0).numpy(), [BOX_A]).equal(masks)  # HWC array
    assert sam2.segment_image(Image.fromarray(chw.permute(1, 2, 0).numpy()), [BOX_A]).equal(masks)  # PIL


def test_no_boxes_give_no_masks(sam2):
    assert sam2.segment_image(random_image(48, 80), np.zeros((0, 4))).shape == (0, 48, 80)


@pytest.mark.parametrize(
    ("image", "boxes", "key"),
    [
        (random_image(48, 80), [[0.1, 0.1, 1.2, 0.5]], "boxes"),  # outside [0, 1]
        (random_image(48, 80), [[-0.1, 0.1, 0.5, 0.5]], "boxes"),
        (random_image(48, 80), [[0.6, 0.1, 0.2, 0.5]], "boxes"),  # x2 < x1
        (random_image(48, 80), [[0.1, 0.6, 0.2, 0.5]], "boxes"),  # y2 < y1
        (random_image(48, 80), [[0.1, float("nan"), 0.2, 0.5]], "boxes"),
        (random_image(48, 80), BOX_A, "boxes"),  # (4,), not (K, 4)
        (random_image(48, 80).float(), [BOX_A], "image"),  # not uint8
        (torch.zeros((4, 48, 80), dtype=torch.uint8), [BOX_A], "image"),  # RGBA
        (torch.zeros((48, 80), dtype=torch.uint8), [BOX_A], "image"),  # grey
    ],
)
def test_bad_image_inputs_raise_naming_the_argument(sam2, image, boxes, key):
    with pytest.raises(ModelError) as error:
        sam2.segment_image(image, boxes)
    assert error.value.key == key
    assert key in str(error.value)


# --- videos ----------------------------------------------------------------------------------------


def test_propagation_returns_a_mask_per_frame(sam2):
    frames = moving_square()
    masks = sam2.segment_video(frames, {0: square_box(0)})
    assert masks.dtype == torch.bool
    assert masks.shape == (5, 48, 80)
    assert all(masks[t].any() for t in range(5))  # the tiny model "sees" the object on every frame
    assert sam2.segment_video(frames, {0: square_box(0)}).equal(masks)  # deterministic


def test_key_frame_in_the_middle_covers_every_frame(sam2):
    frames = moving_square()
    masks = sam2.segment_video(frames, {2: square_box(2)})
    assert masks.shape == (5, 48, 80)
    # frames 0 and 1 come from the backward pass (an unfilled frame would be all False)
    assert masks[0].any() and masks[1].any()
    # the key frame's mask is the box-prompted decoder output, the same as the image model's
    assert masks[2].equal(sam2.segment_image(frames[2], [square_box(2)])[0])
    # tracked frames are not copies of the key frame
    assert not masks[0].equal(masks[2]) and not masks[4].equal(masks[2])


def test_propagated_frames_depend_on_the_key_frame_prompt(sam2):
    frames = moving_square()
    masks = sam2.segment_video(frames, {2: square_box(2)})
    other = sam2.segment_video(frames, {2: BOX_B})
    for t in (0, 1, 3, 4):  # both directions carry the prompt through SAM2's memory
        assert not masks[t].equal(other[t]), t


def test_every_key_frame_with_a_box_is_prompted(sam2):
    frames = moving_square(num_frames=6)
    key_frames = {1: square_box(1), 3: square_box(3), 4: None, 5: square_box(5)}
    masks = sam2.segment_video(frames, key_frames)
    assert masks.shape == (6, 48, 80)
    for t in (1, 3, 5):
        assert masks[t].equal(sam2.segment_image(frames[t], [key_frames[t]])[0]), t
    # frame 4 (None) is tracked, not prompted; frame 0 comes from the backward pass
    assert masks[0].any() and masks[4].any()
    only_first = sam2.segment_video(frames, {1: square_box(1)})
    assert not masks[2].equal(only_first[2])  # the later key frames reach the tracked frames' memory


@pytest.mark.parametrize("key_frames", [{}, {0: None, 3: None}])
def test_no_key_box_gives_empty_masks(sam2, key_frames):
    masks = sam2.segment_video(moving_square(), key_frames)
    assert masks.dtype == torch.bool
    assert masks.shape == (5, 48, 80)
    assert not masks.any()


def test_video_of_one_frame_at_another_size(sam2):
    frames = moving_square(num_frames=1, height=50, width=90)
    masks = sam2.segment_video(frames.numpy(), {np.int64(0): torch.tensor([0.1, 0.2, 0.4, 0.6])})
    assert masks.shape == (1, 50, 90)
    assert masks[0].equal(sam2.segment_image(frames[0], [[0.1, 0.2, 0.4, 0.6]])[0])


def two_squares(num_frames: int = 5, height: int = 48, width: int = 80) -> torch.Tensor:
    """`moving_square` plus a grey square moving left on the rows below; its box per frame is `lower_box(t)`."""
    frames = moving_square(num_frames, height, width)
    for t in range(num_frames):
        frames[t, :, 32:46, 60 - 8 * t : 74 - 8 * t] = 180
    return frames


def lower_box(t: int, height: int = 48, width: int = 80) -> list[float]:
    return [(60 - 8 * t) / width, 32 / height, (74 - 8 * t) / width, 46 / height]


def test_an_expression_of_two_objects_tracks_both_and_its_mask_is_their_union(sam2):
    """Two box prompts per key frame: each object is tracked on its own, the expression's mask is the union."""
    frames = two_squares()
    keys = (0, 2, 4)
    joint = sam2.segment_video(frames, {t: [square_box(t), lower_box(t)] for t in keys})
    upper = sam2.segment_video(frames, {t: square_box(t) for t in keys})
    lower = sam2.segment_video(frames, {t: [lower_box(t)] for t in keys})
    assert joint.shape == (5, 48, 80)
    union = upper | lower
    for t in range(5):
        iou = (joint[t] & union[t]).sum().item() / max(1, (joint[t] | union[t]).sum().item())
        assert iou >= 0.99, (t, iou)
        assert joint[t].sum() > max(upper[t].sum(), lower[t].sum())  # more than either object alone
    for t in keys:  # key frames: the box-prompted decoder's masks of both boxes, united
        expected = sam2.segment_image(frames[t], [square_box(t), lower_box(t)]).any(dim=0)
        assert joint[t].equal(expected) and sam2.expression_mask(frames[t], [square_box(t), lower_box(t)]).equal(
            expected
        )


def test_key_frame_boxes_pair_into_objects_only_when_every_frame_lists_as_many():
    from sa2va_st.model.sam2 import check_key_frame_boxes, video_objects

    same = check_key_frame_boxes({0: [BOX_A, BOX_B], 3: [BOX_B, BOX_A]}, 5)
    assert {obj: sorted(frames) for obj, frames in video_objects(same).items()} == {1: [0, 3], 2: [0, 3]}
    uneven = check_key_frame_boxes({0: [BOX_A, BOX_B], 2: [BOX_A], 4: [], 1: None}, 5)
    assert sorted(uneven) == [0, 2]  # <no_box> frames are no prompts
    objects = video_objects(uneven)
    assert len(objects) == 3 and all(len(frames) == 1 for frames in objects.values())  # each box on its own


def test_no_boxes_give_an_empty_expression_mask(sam2):
    assert not sam2.expression_mask(random_image(20, 30), []).any()
    assert sam2.expression_mask(random_image(20, 30), []).shape == (20, 30)


@pytest.mark.parametrize(
    ("frames", "key_frames", "key"),
    [
        (torch.zeros((5, 48, 80), dtype=torch.uint8), {0: BOX_A}, "frames"),  # no channel axis
        (torch.zeros((5, 48, 80, 3), dtype=torch.uint8), {0: BOX_A}, "frames"),  # channels last
        (torch.zeros((0, 3, 48, 80), dtype=torch.uint8), {}, "frames"),  # no frames
        (torch.zeros((5, 3, 48, 80)), {0: BOX_A}, "frames"),  # float
        (moving_square(), {7: BOX_A}, "key_frame_boxes[7]"),  # past the end
        (moving_square(), {-1: BOX_A}, "key_frame_boxes[-1]"),
        (moving_square(), {2: [0.6, 0.1, 0.2, 0.5]}, "key_frame_boxes[2]"),  # x2 < x1
        (moving_square(), {2: [0.1, 0.1, 1.5, 0.5]}, "key_frame_boxes[2]"),  # outside [0, 1]
        (moving_square(), {2: [0.1, 0.1, 0.5]}, "key_frame_boxes[2]"),  # three numbers
        (moving_square(), {2: [BOX_A, [0.1, 0.2]]}, "key_frame_boxes[2]"),  # the second box is short
        (moving_square(), {"2": BOX_A}, "key_frame_boxes"),  # not an index
        (moving_square(), [BOX_A] * 5, "key_frame_boxes"),  # not a mapping
    ],
)
def test_bad_video_inputs_raise_naming_the_argument(sam2, frames, key_frames, key):
    with pytest.raises(ModelError) as error:
        sam2.segment_video(frames, key_frames)
    assert error.value.key == key
    assert key.split("[")[0] in str(error.value)
