"""The annotation part of a prepared data tree, made from a synthetic world (for tests and smoke checks).

It lays the world's raw files out as `prepare_data` does, without the download and unpack
machinery, so the readers can be tested on their own:

    refer_seg/{refcoco,refcoco+,refcocog}/        instances.json, refs(unc|umd).p
    refer_seg/coco2014/train2014/                 the images
    video_datas/mevis/{train,valid_u}/            (the split parts joined into one zip)
    video_datas/rvos/                             train/, valid/, meta_expressions/, mask_dict.pkl
    video_datas/ReVOS/                            a copy of manual/ReVOS
    temporal/Charades/annotations/                charades_sta_{train,test}.txt
    temporal/didemo/annotations/                  {train,val,test}_data.json
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

from ..atomic import staging_dir

SA2VA = "hub/datasets/Dense-World/Sa2VA-Training"
# archive -> [(member prefix in the archive, destination under data_root)]
ARCHIVE_MAP: dict[str, list[tuple[str, str]]] = {
    "ref_seg_coco.zip": [("ref_seg/refcoco/", "refer_seg/refcoco/"), ("ref_seg/coco2014/", "refer_seg/coco2014/")],
    "ref_seg_coco_+.zip": [("ref_seg/refcoco+/", "refer_seg/refcoco+/")],
    "ref_seg_coco_g.zip": [("refcocog/", "refer_seg/refcocog/")],
    "video_datas_mevis": [("mevis/", "video_datas/mevis/")],
    "video_datas_rvos.zip": [("rvos/", "video_datas/rvos/")],
}
MARKER = ".annotation_tree_complete"


def archive_bytes(world: Path, name: str) -> bytes:
    """An archive of the world; the MeViS parts (.z01, .z02, .zip) concatenated into one zip."""
    folder = world / SA2VA
    if name == "video_datas_mevis":
        parts = sorted(folder.glob("video_datas_mevis.z[0-9][0-9]")) + [folder / "video_datas_mevis.zip"]
        return b"".join(p.read_bytes() for p in parts)
    return (folder / name).read_bytes()


def extract(data: bytes, mapping: list[tuple[str, str]], root: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            for prefix, dest in mapping:
                if info.filename.startswith(prefix):
                    target = root / (dest + info.filename[len(prefix) :])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(info))


def synthetic_data_root(world: Path, data_root: Path) -> Path:
    """Lay out the world's annotations (and frames) under data_root once; later calls reuse it."""
    world, data_root = Path(world), Path(data_root)
    if (data_root / MARKER).is_file():
        return data_root
    data_root.parent.mkdir(parents=True, exist_ok=True)
    with staging_dir(data_root.parent, data_root.name) as staging:
        tree = staging / "tree"
        for name, mapping in ARCHIVE_MAP.items():
            extract(archive_bytes(world, name), mapping, tree)
        shutil.copytree(world / "manual/ReVOS", tree / "video_datas/ReVOS")
        charades = tree / "temporal/Charades/annotations"
        charades.mkdir(parents=True)
        for path in sorted((world / "static/charades").glob("charades_sta_*.txt")):
            shutil.copyfile(path, charades / path.name)
        didemo = tree / "temporal/didemo/annotations"
        didemo.mkdir(parents=True)
        for path in sorted((world / "hub/datasets/synthetic/didemo-annotations").glob("*_data.json")):
            shutil.copyfile(path, didemo / path.name)
        (tree / MARKER).write_text("complete\n")
        if data_root.exists():
            shutil.rmtree(data_root)
        tree.rename(data_root)
    return data_root
