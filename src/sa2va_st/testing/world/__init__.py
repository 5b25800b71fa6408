"""The synthetic world: a deterministic miniature of every dataset the pipeline reads, in the real formats.

generate.py      the whole world into a folder, atomically and byte-reproducibly (world.json describes it)
image_refer.py   RefCOCO / RefCOCO+ / RefCOCOg over one pool of COCO-style images
video_refer.py   MeViS, Ref-YouTube-VOS and ReVOS: JPEG frame folders, expressions, RLE masks
annotations.py   Charades-STA text and DiDeMo JSON over planned videos
videos.py        what a temporal video shows and when (plans, rendering)
shapes.py        the coloured shapes, their masks and the words that describe them
scale.py         WorldScale: the base world, or more training / held-out samples (the demo)
archives.py      zip/split-archive/.gitattributes bytes as the hub serves them
"""

from .generate import GENERATOR_VERSION, generate_world, read_world, world_is_current
from .scale import WorldScale

__all__ = ["GENERATOR_VERSION", "WorldScale", "generate_world", "read_world", "world_is_current"]
