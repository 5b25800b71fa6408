"""Errors a researcher can act on: each names the file, the key and the fix."""

from __future__ import annotations


class Sa2vaError(Exception):
    """Base class: a message that says what is wrong, where, and how to fix it."""

    def __init__(self, what: str, *, file: str | None = None, key: str | None = None, fix: str | None = None):
        self.what, self.file, self.key, self.fix = what, file, key, fix
        parts = [what]
        if file:
            parts.append(f"file: {file}")
        if key:
            parts.append(f"key: {key}")
        if fix:
            parts.append(f"fix: {fix}")
        super().__init__("\n  ".join(parts))


class DiskFullError(Sa2vaError):
    """A write ran out of disk (ENOSPC) or quota (EDQUOT): the message gives the bytes being written
    where known and the free and total bytes of that filesystem; the output it was writing is not
    replaced (the temporary is removed), so nothing already produced is damaged."""


class ConfigError(Sa2vaError):
    """The configuration is invalid; raised before any job runs."""


class DownloadError(Sa2vaError):
    """A file could not be fetched or did not match its published checksum."""


class ArchiveError(Sa2vaError):
    """An archive is unsafe, truncated or too large to unpack here."""


class LayoutError(Sa2vaError):
    """An unpacked tree does not contain what the pipeline needs."""


class SourceError(Sa2vaError):
    """A temporal source (videos or annotations) is missing or broken."""


class FeatureError(Sa2vaError):
    """A video cannot be turned into features, a model cannot be loaded, or a shard failed too often."""


class AnnotationError(Sa2vaError):
    """An annotation file is malformed or inconsistent with the files it refers to.

    Policy, the same for every reader: malformed input (a line that does not parse, a missing key,
    a wrong type, a mask list whose length is not the frame count, an RLE that does not decode, an
    id that points nowhere) raises, naming the file, the line or key, and the fix. Nothing is
    silently dropped: a wrong file is a wrong download or version, and training on part of it
    would hide that.
    """


class ManifestError(Sa2vaError):
    """The manifests stage cannot build a trustworthy table: a special_json breaks its schema, or a
    folder/file that most rows of a split refer to (images, frames, videos, features, their index) is missing."""


class DatasetError(Sa2vaError):
    """A manifest, or a file it names (image, frame, features), is missing or inconsistent.

    ``file`` names the missing/broken file (or the manifest), ``key`` the manifest, row id and
    column where there is one, ``fix`` what to re-run.
    """


class ModelError(Sa2vaError):
    """A model cannot be built, loaded or run on the given inputs: a bad model config value, a
    checkpoint that does not match its base model, a bad argument, or a batch whose placeholders and
    features disagree.

    ``key`` names the config key (``model.lora.r``) or the checkpoint file's entry; ``fix`` what to change.
    """


class SampleTooLongError(ModelError):
    """A training sample whose first answer does not fit in ``max_length`` tokens: the trainer counts
    and skips it (`Sa2vaSTProcessor` never cuts into an answer)."""


class TrainingError(Sa2vaError):
    """A training run cannot start or go on: a checkpoint of another config or layout, a non-finite loss
    or gradient (naming the step and the samples), a rank that died, settings that do not fit together.

    ``key`` names the config key (``training.lr``) or the checkpoint's entry; ``fix`` what to do.
    """


class EvaluationError(Sa2vaError):
    """Predictions that cannot be scored: none saved, a split of mixed tasks, a record without its expected
    answer (labels held by a server), or an unknown benchmark in the config."""
