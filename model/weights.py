"""Built-in weights: a table of the networks that ship inside the package (timm/torchvision style).

Each entry names its file, the sha256 the file must have (checked on every load), how its inputs are
preprocessed, the recipe and data that made it (with their licenses) and its measured quality, so a
user can see what a network is before trusting its mattes.  Weights are stored as float16 tensors
(half the size) and upcast to float32 on load: the float32 network *is* the reference every artifact
is compared against (its content hash, ``weights_sha256``, is what exported artifacts record).

``resolve_checkpoint`` is the one place that turns what a user passed (nothing, a weights name, a
file, a :class:`Checkpoint`) into a checkpoint: ``load_network``, ``export`` and the pipeline all use it;
``find_reference`` finds the checkpoint an artifact was exported from (parity, diagnose, benchmark baselines).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modnet_edge.core import ArtifactMetadata, PreprocessSpec, sha256_path
from modnet_edge.core.errors import CheckpointError

if TYPE_CHECKING:  # the table is read torch-free (``modnet-edge info`` of an .onnx names its weights)
    from modnet_edge.model.checkpoint import Checkpoint
    from modnet_edge.model.network import MODNet

ASSETS = "modnet_edge.assets"
BUILTIN_KIND = "builtin"


@dataclass(frozen=True)
class Weights:
    """One row of the weights table."""

    name: str
    file: str  # inside modnet_edge/assets/weights/
    sha256: str  # of the stored file
    summary: str
    recipe: str  # how to reproduce: the exact command
    data: tuple[dict[str, str], ...]  # what it was trained on, each with its license
    quality: dict[str, Any] = field(default_factory=dict)  # measured, with where and how
    synthetic_only: bool = False
    training_images: tuple[str, ...] = ()  # stems of the real images it learned from (quality splits on them)
    preprocessing: PreprocessSpec = field(default_factory=PreprocessSpec)
    # CSV beside the file: image, role (trained | validated), sha256, which copy -- every image file it
    # learned from or chose its checkpoint on, so verdicts can say when they rest on such images
    images_record: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "sha256": self.sha256, "summary": self.summary,
                "recipe": self.recipe, "data": list(self.data), "quality": self.quality,
                "synthetic_only": self.synthetic_only, "training_images": list(self.training_images),
                "images_record": self.images_record, "preprocessing": self.preprocessing.to_dict()}


WEIGHTS: dict[str, Weights] = {}
# Names that stand for a row: "starter" is whichever version is the default today.  Artifacts and
# checkpoints record the row's own name, so they keep finding their reference when the default moves.
ALIASES: dict[str, str] = {"starter": "starter-v1"}
DEFAULT_WEIGHTS = "starter"


def _register(w: Weights) -> Weights:
    WEIGHTS[w.name] = w
    return w


_register(Weights(
    name="starter-v1",
    file="starter-v1.fp16.pt",
    sha256="79b78ef8db80490d696b258734d3edb7e57a2707f842b7eeec7a4082e3120484",
    summary=("MODNet trained by this toolkit on 8 MIT-licensed P3M portraits composited over procedural and "
             "real backgrounds, plus the synthetic set; a starter that mattes people, not production quality "
             "(bring the official MODNet weights or your own for that)"),
    recipe="modnet-edge train starter-v1 --data P3M_PORTRAITS -o runs/starter-v1  (3 stages: 192, 320, 512 px)",
    data=(
        {"name": "P3M-10k portraits p_07141906, p_09ba26b4, p_22fc0130, p_51c916fc, p_71bcce3a, p_a09f6d7a, "
                 "p_bac3c1ff, p_bc5cfad1 (soft mattes are P3M-Net predictions)", "license": "MIT"},
        {"name": "modnet-edge built-in synthetic portraits (procedural)", "license": "Apache-2.0 (this project)"},
    ),
    training_images=("p_07141906", "p_09ba26b4", "p_22fc0130", "p_51c916fc", "p_71bcce3a", "p_a09f6d7a",
                     "p_bac3c1ff", "p_bc5cfad1"),
    images_record="starter-v1.images.csv",
    quality={
        "headline": ("on 2 held-out P3M portraits MSE 0.055, MAD 0.076 (7.8% unsure pixels); on 290 person-seg photos "
                     "IoU 0.44. MediaPipe selfie segmentation on the same: MSE 0.0093, IoU 0.88 -- it does not beat "
                     "that peer yet"),
        "held_out_portraits": {"images": ["p_514ca06a", "p_818e689d"], "mse": 0.05522, "mad": 0.07556, "sad": 119.41,
                               "grad": 49.24, "conn": 112.06, "unsure": 0.078},
        "training_portraits": {"images": 8, "mse": 0.09765, "mad": 0.12263, "unsure": 0.111,
                               "note": "the original photos: their backgrounds were never seen whole in training"},
        "person_seg_iou": {"images": 290, "mean": 0.444, "note": "evaluation only (no license: never trained on)"},
        "person_free_share": {"images": 27, "mean": 0.359, "max": 0.734,
                              "note": "data/person-free/eval: share of pixels at alpha >= 0.5 on photos with nobody"},
        "shape_stability": {"images": 7, "squash_mse": 0.0153, "letterbox_mse": 0.0195,
                            "note": "the package's unseen photos: native matte vs 512x512 squashed / letterboxed"},
        "peer_mediapipe_selfie": {"held_out_portraits_mse": 0.0093, "held_out_portraits_mad": 0.0201,
                                  "person_seg_iou": 0.876, "person_free_share": 0.089},
        "measured": "2026-12-01 and 2026-12-06, `modnet-edge quality` (mattes against P3M-Net pseudo ground truth, "
                    "full images)",
    },
))


_PERSON_FREE_TRAIN = (
    "Picture_0B_by_freespace", "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
    "brick", "chelsea", "coffee", "flower", "friends_by_Aitzol_Berasategi", "grass", "gravel",
    "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi", "rocket", "seeding_by_Clements_Engelhardt")

_register(Weights(
    name="starter-v2",
    file="starter-v2.fp16.pt",
    sha256="44faef2b7d67b80326b55853096e7e82115bcaed2e9e7578dad8a86f122ac3a4",
    summary=("starter-v1 trained further by this toolkit with 15 license-clean person-free photos behind the 8 P3M "
             "people and alone as negatives, groups and aspect stretch; a starter, not production quality"),
    recipe="modnet-edge train starter-v2 --data P3M_PORTRAITS -o runs/starter-v2  (from starter-v1; 3 stages: 256, 384, "
           "512 px)",
    data=(
        {"name": "P3M-10k portraits p_07141906, p_09ba26b4, p_22fc0130, p_51c916fc, p_71bcce3a, p_a09f6d7a, "
                 "p_bac3c1ff, p_bc5cfad1 (soft mattes are P3M-Net predictions)", "license": "MIT"},
        {"name": "15 person-free photos, data/person-free/train (RECORD.csv: source, author, sha256 each): 8 from "
                 "Debian lomiri-wallpapers-16.04, 6 from scikit-image 0.26.0, 1 from scikit-learn 1.9.1",
         "license": "CC-BY-4.0 (7), CC0-1.0 (6), public domain (1), CC-BY-2.0 (1)"},
        {"name": "modnet-edge built-in synthetic portraits (procedural)", "license": "Apache-2.0 (this project)"},
        {"name": "starter-v1 (initial weights)", "license": "Apache-2.0 (this project)"},
    ),
    training_images=("p_07141906", "p_09ba26b4", "p_22fc0130", "p_51c916fc", "p_71bcce3a", "p_a09f6d7a",
                     "p_bac3c1ff", "p_bc5cfad1", *_PERSON_FREE_TRAIN),
    images_record="starter-v2.images.csv",
    quality={
        "headline": ("better than v1 on person-free photos only (19% of pixels marked person vs 36%); worse on the 2 "
                     "held-out P3M portraits (MSE 0.060 vs 0.055) and on 290 person-seg photos (IoU 0.39 vs 0.44), "
                     "so it is not the default"),
        "held_out_portraits": {"images": ["p_514ca06a", "p_818e689d"], "mse": 0.06014, "mad": 0.08415, "sad": 132.88,
                               "grad": 49.88, "conn": 122.27, "unsure": 0.097},
        "person_seg_iou": {"images": 290, "mean": 0.388, "median": 0.354,
                           "note": "evaluation only (no license: never trained on)"},
        "person_free_share": {"images": 27, "mean": 0.190, "max": 0.549,
                              "note": "data/person-free/eval (never trained on): share of pixels at alpha >= 0.5"},
        "shape_stability": {"images": 7, "squash_mse": 0.0257, "letterbox_mse": 0.0381},
        "peer_mediapipe_selfie": {"person_seg_iou": 0.876, "person_free_share": 0.089},
        "measured": "2026-12-06, `modnet-edge quality starter-v1 starter-v2 mediapipe-selfie=...` on AMD EPYC, 2 cores",
    },
))

@dataclass(frozen=True)
class SeenImage:
    """An image file a built-in network saw: ``role`` "trained" (learned from) or "validated" (its
    checkpoint was chosen on it, never trained on)."""

    name: str
    role: str
    copy: str


def seen_images(name: Any) -> dict[str, SeenImage]:
    """sha256 -> :class:`SeenImage` for every image file the built-in weights ``name`` were trained or
    validated on (empty for anything that is not a built-in weights name)."""
    if not is_weights_name(name):
        return {}
    w = get_weights(name)
    if not w.images_record:
        return {}
    import csv

    path = Path(str(resources.files(ASSETS).joinpath("weights", w.images_record)))
    with path.open(newline="") as f:
        return {row["sha256"]: SeenImage(row["image"], row["role"], row["copy"]) for row in csv.DictReader(f)}


def weights_file(name: str) -> Path:
    w = get_weights(name)
    return Path(str(resources.files(ASSETS).joinpath("weights", w.file)))


def is_weights_name(name: Any) -> bool:
    """Whether ``name`` names a row of the table (or an alias of one)."""
    return isinstance(name, str) and (name in WEIGHTS or name in ALIASES)


def get_weights(name: str) -> Weights:
    """The row ``name`` names, through an alias ("starter": the default version) where it is one."""
    row = WEIGHTS.get(ALIASES.get(name, name))
    if row is None:
        raise CheckpointError(f"no built-in weights named {name!r}; available: {weights_names()}")
    return row


def weights_names() -> list[str]:
    return sorted(WEIGHTS) + sorted(ALIASES)


def load_weights(name: str = DEFAULT_WEIGHTS) -> Checkpoint:
    """The built-in network ``name`` as a float32 checkpoint; the stored file's sha256 is checked first."""
    from modnet_edge.model.checkpoint import Checkpoint, read_checkpoint, weights_sha256

    w = get_weights(name)
    name = w.name  # the row's own name, never an alias, is what checkpoints and artifacts record
    path = weights_file(name)
    if not path.is_file():
        raise CheckpointError(f"built-in weights {name!r} are missing from the installed package", path)
    actual = sha256_path(path)
    if actual != w.sha256:
        raise CheckpointError(f"built-in weights {name!r}: file sha256 {actual[:12]}... differs from the table's "
                              f"{w.sha256[:12]}... (corrupted or replaced)", path)
    stored = read_checkpoint(path)
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in stored.state_dict.items()}
    prov = dict(stored.provenance)
    prov.update({"weights": name, "weights_sha256": weights_sha256(sd), "synthetic": w.synthetic_only,
                 "note": w.summary, "trained_on": "; ".join(f"{d['name']} ({d['license']})" for d in w.data)})
    return Checkpoint(None, BUILTIN_KIND, stored.model_config, sd, w.preprocessing, prov, None, actual)


def resolve_checkpoint(checkpoint: Any = None) -> Checkpoint:
    """What a user passed -> a checkpoint: None is the default built-in weights, a built-in name (that is
    not an existing file) those weights, a path a checkpoint file, a :class:`Checkpoint` itself."""
    from modnet_edge.model.checkpoint import Checkpoint, read_checkpoint

    if isinstance(checkpoint, Checkpoint):
        return checkpoint
    if checkpoint is None:
        return load_weights(DEFAULT_WEIGHTS)
    if is_weights_name(checkpoint) and not Path(checkpoint).exists():
        return load_weights(checkpoint)
    if not isinstance(checkpoint, (str, Path)):
        raise CheckpointError(f"checkpoint must be a path, a built-in weights name {weights_names()} or a "
                              f"Checkpoint, not {type(checkpoint).__name__}")
    return read_checkpoint(checkpoint)


def provenance_notes(source: dict[str, Any] | None) -> list[str]:
    """What a user must know about the network behind a checkpoint or artifact, from its recorded
    source: built-in weights named with their measured quality; synthetic-only or untrained networks
    flagged (their mattes of real photos mean nothing)."""
    source = source or {}
    notes = []
    line = describe_weights(source)
    if line:
        notes.append(line)
    if source.get("kind") == "random-init":
        notes.append("WARNING: a randomly initialised, untrained network: its mattes are noise")
    elif source.get("synthetic"):
        notes.append("WARNING: trained on the built-in SYNTHETIC set only: not a portrait matter, its mattes of "
                     "real photos are not meaningful")
    return notes


def describe_weights(provenance: dict[str, Any]) -> str | None:
    """One short line naming built-in weights, their held-out error where measured, and where their full
    record is (``modnet-edge weights NAME``: summary, recipe, data and licenses, quality); None for other
    checkpoints.  Short because every predict/info/export prints it: the record is one command away."""
    name = provenance.get("weights")
    if not is_weights_name(name):
        return None
    w = get_weights(name)
    held_out = w.quality.get("held_out_portraits") or {}
    mse = held_out.get("mse")
    measured = (f"MSE {mse:.3f} on {len(held_out.get('images') or [])} held-out portraits; "
                if isinstance(mse, (int, float)) and held_out.get("images") else "")
    return f"built-in weights '{w.name}' ({measured}record: modnet-edge weights {w.name})"


def load_network(checkpoint: Any = None, device: str = "cpu") -> MODNet:
    """Official or own checkpoint, or built-in weights by name -> MODNet in inference mode.
    ``None``: the built-in starter weights."""
    from modnet_edge.model.checkpoint import build_from_checkpoint
    from modnet_edge.model.device import pick_device

    return build_from_checkpoint(resolve_checkpoint(checkpoint)).to(pick_device(device))


def find_reference(meta: ArtifactMetadata, artifact: Path, reference: str | Path | None = None) -> Checkpoint:
    """The checkpoint an artifact came from, verified by sha256 (or rebuilt, for a seeded random net)."""
    from modnet_edge.model.checkpoint import random_checkpoint, read_checkpoint, weights_sha256

    src = meta.source or {}
    if reference is None and src.get("kind") == BUILTIN_KIND:
        ckpt = _remembered(weights_file(get_weights(str(src.get("weights"))).name),
                           lambda _: load_weights(str(src.get("weights"))))
        if src.get("weights_sha256") not in (None, weights_sha256(ckpt.state_dict)):
            raise CheckpointError(f"the installed built-in weights {src.get('weights')!r} are not the ones this "
                                  "artifact was exported from (weights hash differs); pass reference=/--reference",
                                  artifact)
        return ckpt
    if reference is None and src.get("kind") == "random-init":
        ckpt = random_checkpoint(int(src.get("seed", 0)))
        if src.get("weights_sha256") not in (None, weights_sha256(ckpt.state_dict)):
            raise CheckpointError("cannot rebuild the random-init reference (weights hash differs)", artifact)
        return ckpt
    if reference is not None and is_weights_name(reference) and not Path(reference).exists():
        return load_weights(str(reference))  # a weights name, as everywhere a checkpoint is taken
    candidates = [Path(reference)] if reference else [
        Path(p) for p in (src.get("checkpoint_path"), artifact.parent / str(src.get("checkpoint", ""))) if p]
    replaced = []
    for cand in candidates:
        if cand.is_file():
            if reference is None and src.get("checkpoint_sha256") not in (None, sha256_path(cand)):
                replaced.append(str(cand))
                continue
            return _remembered(cand, read_checkpoint)
    if replaced:
        raise CheckpointError(f"the reference checkpoint {replaced[0]} is not the file this artifact was exported from "
                              "(its sha256 differs from the one recorded at export: replaced or modified); pass "
                              "reference=/--reference to compare against it anyway", artifact)
    raise CheckpointError(f"cannot find the reference checkpoint {src.get('checkpoint')!r} (looked at "
                          f"{[str(c) for c in candidates]}); pass reference=/--reference", artifact)


# checkpoints find_reference read, by file identity (path, size, modification time, inode) and reader: a
# precision search runs parity about 60 times against one reference, and each read (torch.load and the
# weights hash) was 0.15 s; a file written again is read again.  The reader is part of the key because two
# readers of one file differ: built-in weights are stored in fp16 and loaded as fp32 by name, but a path
# to the same file reads as stored (a QAT run's reference did that, and parity then refused every
# artifact of the built-in weights in that process: "weights hash differs")
_READ_MEMO: dict[tuple[tuple[str, int, int, int], str], Checkpoint] = {}


def _remembered(path: Path, read: Any) -> Checkpoint:
    """``read(path)``, remembered while the file is unchanged; each caller gets its own copy of the record
    (the tensors are shared: nothing here writes to them)."""
    import dataclasses

    from modnet_edge.core.files import file_identity

    key = (file_identity(path), f"{read.__module__}.{read.__qualname__}")
    if key not in _READ_MEMO:
        if len(_READ_MEMO) >= 4:
            _READ_MEMO.pop(next(iter(_READ_MEMO)))
        _READ_MEMO[key] = read(path)
    ckpt = _READ_MEMO[key]
    return dataclasses.replace(ckpt, provenance=dict(ckpt.provenance), state_dict=dict(ckpt.state_dict))
