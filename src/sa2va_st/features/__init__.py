"""CLIP features of videos at any fps (stage `extract_clip_features`).

One concept per module:

- `timing`      which source frame each feature comes from (the rule, as pure functions)
- `decode`      probe a video and read the chosen frames as display-oriented uint8 RGB
- `preprocess`  CLIP preprocessing on uint8 (resize and crop before converting to float)
- `clip_model`  load an open_clip model by name + tag, checkpoint file or local folder
- `pipeline`    the overlapped decode/encode loop, per-video atomic outputs, the index
- `sharding`    which shard job owns which video; listing a folder of videos

Importing this package is cheap (no torch); import the submodules you need.
"""

from ..errors import FeatureError

__all__ = ["FeatureError"]
