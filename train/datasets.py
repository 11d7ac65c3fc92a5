"""Training data: matting folders, fg + alpha + bg composites, segmentation folders and the synthetic set.

Layouts (files matched by stem, any image suffix):

* matting:      ``root/image/*`` + ``root/matte/*`` (or ``root/alpha/*``)  -- PPM-100, P3M-10k
* composite:    ``root/fg/*`` + ``root/alpha/*`` + ``root/bg/*``           -- Adobe/AIM style, bg drawn per sample
* segmentation: ``root/image/*`` + ``root/mask/*`` (binary person masks)   -- pretraining of backbone + LR branch

Every dataset yields the same dict of tensors (``image`` normalised exactly as the predictor does,
``rgb`` in [0, 1], ``alpha``, ``fg``, ``bg``, ``has_fgbg``) so one collate and one loss serve all.
Augmentation randomness is seeded per ``(seed, epoch, index)`` (see :mod:`.augment`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from modnet_edge.core import PreprocessSpec
from modnet_edge.core.errors import DataError, InputImageError
from modnet_edge.core.images import list_images, read_image, read_matte
from modnet_edge.core.preprocess import preprocess

from modnet_edge.training.augment import AugmentConfig, augment, fit_crop
from modnet_edge.training.composites import (CompositeAugment, compose_sample, composite_description, load_backgrounds,
                                          load_portraits, synthetic_sample)
from modnet_edge.training.imaging import fit_matte, same_aspect
from modnet_edge.training.synthetic import SYNTHETIC_LABEL, render_portrait

_MATTE_MODES = {"L", "1", "I", "I;16", "I;16B", "I;16L", "F", "RGB", "RGBA"}


def find_layout(root: str | Path) -> tuple[str, dict[str, Path]]:
    """Detect which layout ``root`` uses; returns (kind, {role: folder})."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("data folder does not exist", root)
    sub = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    if "fg" in sub and "alpha" in sub and "bg" in sub:
        return "composite", {"fg": sub["fg"], "alpha": sub["alpha"], "bg": sub["bg"]}
    if "image" in sub and ("matte" in sub or "alpha" in sub):
        return "matting", {"image": sub["image"], "matte": sub.get("matte") or sub["alpha"]}
    if "image" in sub and "mask" in sub:
        return "segmentation", {"image": sub["image"], "mask": sub["mask"]}
    raise DataError("unrecognised data layout: expected image/ + matte/ (or alpha/), fg/ + alpha/ + bg/, or "
                    f"image/ + mask/; found sub-folders {sorted(sub) or 'none'}", root)


def pair_by_stem(images: Path, targets: Path, what: str) -> list[tuple[Path, Path]]:
    """Pair files of two folders by stem; unmatched or duplicate stems are an error listing them."""
    a, b = _listed(images), _listed(targets)
    sa, sb = _stems(a, images), _stems(b, targets)
    only_a, only_b = sorted(set(sa) - set(sb)), sorted(set(sb) - set(sa))
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} image(s) without a {what} in {targets}: {only_a[:8]}")
        if only_b:
            parts.append(f"{len(only_b)} {what}(s) without an image in {images}: {only_b[:8]}")
        raise DataError("unmatched file stems: " + "; ".join(parts), images.parent)
    return [(sa[s], sb[s]) for s in sorted(sa)]


def _listed(folder: Path) -> list[Path]:
    try:
        files = list_images(folder)
    except InputImageError as exc:
        raise DataError(str(exc)) from None
    if not files:
        raise DataError("folder contains no images", folder)
    return files


def _stems(files: list[Path], folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in files:
        if f.stem in out:
            raise DataError(f"two files share the stem {f.stem!r} ({out[f.stem].name}, {f.name})", folder)
        out[f.stem] = f
    return out


def check_matte_header(image: Path, matte: Path) -> None:
    """Refuse, before training starts, a matte that is not one channel or does not fit its image.

    A matte stored at a lower resolution with the image's aspect ratio (common for segmentation masks)
    is accepted and resized when read; any other size difference is an error."""
    sizes = []
    for path in (image, matte):  # an error names the file that is unreadable, image or matte
        try:
            with Image.open(path) as f:
                sizes.append((f.size, f.mode))
        except OSError as exc:
            raise DataError(f"unreadable {'image' if path == image else 'matte'} file: {exc}", path) from None
    (isize, _), (msize, mode) = sizes
    if mode not in _MATTE_MODES:
        raise DataError(f"matte has mode {mode} ({len(Image.Image.getbands(Image.new(mode, (1, 1))))} channels); "
                        "expected a single-channel (grey) matte, or RGB with equal channels, or RGBA", matte)
    if msize != isize and not same_aspect(isize, msize):
        raise DataError(f"matte is {msize[0]}x{msize[1]} but its image {image.name} is {isize[0]}x{isize[1]} "
                        "(and not a scaled copy of the same aspect ratio)", matte)


def _to_tensors(arrays: dict[str, np.ndarray], spec: PreprocessSpec, has_fgbg: bool) -> dict[str, torch.Tensor]:
    rgb = arrays["rgb"]
    u8 = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    image = preprocess(u8, spec)[0]  # THE preprocessing (normalisation) the predictor applies
    chw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))  # noqa: E731
    zeros = np.zeros_like(rgb)
    return {"image": torch.from_numpy(image), "rgb": chw(u8.astype(np.float32) / 255.0),
            "alpha": torch.from_numpy(np.array(arrays["alpha"], dtype=np.float32))[None],  # a writable copy
            "fg": chw(arrays.get("fg", zeros)), "bg": chw(arrays.get("bg", zeros)),
            "has_fgbg": torch.tensor(has_fgbg)}


class _Base(Dataset):
    """Shared machinery: per-(seed, epoch, index) generators and the fixed-size normalisation spec."""

    description = ""

    def __init__(self, aug: AugmentConfig, seed: int, train: bool) -> None:
        self.aug, self.seed, self.train, self.epoch = aug, int(seed), train, 0
        self.spec = PreprocessSpec().with_fixed_size((aug.size, aug.size))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch, int(index), 0xA06])


class SyntheticMatting(_Base):
    """The built-in SYNTHETIC set, drawn at the training size (true fg/bg known)."""

    def __init__(self, count: int, aug: AugmentConfig, seed: int = 0, train: bool = True) -> None:
        super().__init__(aug, seed, train)
        self.count = int(count)
        self.description = f"{SYNTHETIC_LABEL}: {count} samples, seed {seed}, {aug.size}px"

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        s = render_portrait(self.seed, index, self.aug.size, self.aug.size)
        arrays = {"rgb": s.rgb.astype(np.float32) / 255.0, "alpha": s.alpha, "fg": s.fg, "bg": s.bg}
        if self.train:
            arrays = augment(arrays, self.rng(index), self.aug, crop=False)
        return _to_tensors(arrays, self.spec, True)


class MattingFolder(_Base):
    """``image/`` + ``matte/`` pairs; the compositional loss uses the image-only approximation."""

    def __init__(self, pairs: list[tuple[Path, Path]], aug: AugmentConfig, seed: int = 0, train: bool = True,
                 binary: bool = False, description: str = "") -> None:
        super().__init__(aug, seed, train)
        for img, matte in pairs:
            check_matte_header(img, matte)
        self.pairs, self.binary, self.description = pairs, binary, description

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        img_path, matte_path = self.pairs[index]
        rgb = read_image(img_path).astype(np.float32) / 255.0
        alpha = fit_matte(read_matte(matte_path), rgb.shape[0], rgb.shape[1], matte_path)
        if self.binary:
            alpha = (alpha > 0.5).astype(np.float32)
        arrays = {"rgb": rgb, "alpha": alpha}
        if self.train:
            arrays = augment(arrays, self.rng(index), self.aug)
        else:
            arrays = fit_crop(arrays, self.aug.size, None)
        if self.binary:
            arrays["alpha"] = (arrays["alpha"] > 0.5).astype(np.float32)
        return _to_tensors(arrays, self.spec, False)


class CompositeFolder(_Base):
    """Foreground + alpha composited over a background drawn per (seed, epoch, index)."""

    def __init__(self, pairs: list[tuple[Path, Path]], backgrounds: list[Path], aug: AugmentConfig, seed: int = 0,
                 train: bool = True, description: str = "") -> None:
        super().__init__(aug, seed, train)
        for fg, alpha in pairs:
            check_matte_header(fg, alpha)
        self.pairs, self.backgrounds, self.description = pairs, backgrounds, description

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.rng(index)
        fg_path, alpha_path = self.pairs[index]
        fg = read_image(fg_path).astype(np.float32) / 255.0
        alpha = fit_matte(read_matte(alpha_path), fg.shape[0], fg.shape[1], alpha_path)
        bg_path = self.backgrounds[int(rng.integers(len(self.backgrounds))) if self.train else
                                   index % len(self.backgrounds)]
        bg = fit_crop({"bg": read_image(bg_path).astype(np.float32) / 255.0}, max(fg.shape[:2]), None)["bg"]
        bg = bg[:fg.shape[0], :fg.shape[1]]
        rgb = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
        arrays = {"rgb": rgb, "alpha": alpha, "fg": fg, "bg": bg}
        arrays = augment(arrays, rng, self.aug) if self.train else fit_crop(arrays, self.aug.size, None)
        return _to_tensors(arrays, self.spec, True)


class PortraitComposites(_Base):
    """Matted portraits cut out and composited over fresh backgrounds (see :mod:`.composites`), with
    ``synthetic_mix`` of the samples drawn from the synthetic set instead; ``samples`` per epoch."""

    def __init__(self, pairs: list[tuple[Path, Path]], aug: AugmentConfig, seed: int = 0, samples: int = 400,
                 synthetic_mix: float = 0.0, composite: CompositeAugment | None = None,
                 photos: list[Path] | None = None) -> None:
        super().__init__(aug, seed, True)
        for img, matte in pairs:
            check_matte_header(img, matte)
        self.portraits, regions = load_portraits(pairs)
        self.photos = load_backgrounds(photos or [])
        self.backgrounds = regions + self.photos  # real backgrounds behind people: both kinds
        self.samples, self.synthetic_mix = int(samples), float(synthetic_mix)
        self.composite = composite or CompositeAugment(color_jitter=max(aug.color_jitter, 0.0))
        self.description = composite_description(pairs, len(self.backgrounds), self.samples, self.synthetic_mix, aug,
                                                 self.composite, len(self.photos))

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.rng(index)
        size = self.aug.size
        if rng.random() < self.synthetic_mix:
            arrays = synthetic_sample(self.seed + 1 + self.epoch, index, size)
            arrays = augment(arrays, rng, self.aug, crop=False)
        else:
            arrays = compose_sample(self.portraits, self.backgrounds, int(rng.integers(len(self.portraits))), size,
                                    rng, self.composite, self.photos)
        return _to_tensors(arrays, self.spec, True)


def split_indices(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A deterministic (train, val) split: at least one of each when n >= 2 and fraction > 0."""
    order = np.random.default_rng([seed & 0xFFFFFFFF, 0x5B17]).permutation(n).tolist()
    k = 0 if fraction <= 0 or n < 2 else min(n - 1, max(1, int(round(n * fraction))))
    return sorted(order[k:]), sorted(order[:k])


def build_datasets(data: str | Path | None, size: int, *, task: str = "auto", val_data: str | Path | None = None,
                   val_fraction: float = 0.1, seed: int = 0, synthetic_count: int = 2000,
                   synthetic_val_count: int = 32, scale_range: tuple[float, float] = (0.8, 1.25), flip: bool = True,
                   color_jitter: float = 0.2, compose: bool = False, samples_per_epoch: int = 400,
                   synthetic_mix: float = 0.0, composite: CompositeAugment | None = None,
                   backgrounds: str | Path | None = None) -> tuple[str, _Base, _Base | None]:
    """(task, train set, validation set or None) for a data folder, or the synthetic set when ``data`` is None."""
    aug = AugmentConfig(size, tuple(scale_range), flip, color_jitter)  # type: ignore[arg-type]
    if data is None:
        if task == "segmentation":
            raise DataError("segmentation pretraining needs a data folder with image/ + mask/")
        train = SyntheticMatting(synthetic_count, aug, seed, train=True)
        val = SyntheticMatting(synthetic_val_count, aug, seed + 7919, train=False) if synthetic_val_count else None
        return "matting", train, val
    kind, folders = find_layout(data)
    resolved = "segmentation" if kind == "segmentation" else "matting"
    if task not in ("auto", resolved):
        raise DataError(f"task {task!r} does not fit a {kind} folder (expected {resolved})", data)
    if compose:
        if kind != "matting":
            raise DataError(f"compose needs image/ + matte/ portraits, not a {kind} folder", data)
        pairs = pair_by_stem(folders["image"], folders["matte"], "matte")
        tr, va = split_indices(len(pairs), val_fraction, seed)
        photos = _listed(Path(backgrounds)) if backgrounds is not None else None
        train_set: _Base = PortraitComposites([pairs[i] for i in tr], aug, seed, samples_per_epoch, synthetic_mix,
                                              composite, photos)
        val_set: _Base | None = MattingFolder([pairs[i] for i in va], aug, seed, train=False, description=(
            f"{data} held out: {', '.join(pairs[i][0].stem for i in va)}")) if va else None
    else:
        train_set, val_set = _folder_sets(kind, folders, aug, seed, val_fraction, data)
    if val_data is not None:
        vkind, vfolders = find_layout(val_data)
        if vkind == "composite":
            raise DataError("validation data must be image/ + matte/ (or mask/) pairs", val_data)
        val_pairs = pair_by_stem(vfolders["image"], vfolders.get("matte") or vfolders["mask"], "matte")
        val_set = MattingFolder(val_pairs, aug, seed, train=False, binary=vkind == "segmentation",
                                description=f"{val_data} ({len(val_pairs)} pairs)")
    return resolved, train_set, val_set


def _folder_sets(kind: str, folders: dict[str, Path], aug: AugmentConfig, seed: int, val_fraction: float,
                 root: str | Path) -> tuple[_Base, _Base | None]:
    if kind == "composite":
        pairs = pair_by_stem(folders["fg"], folders["alpha"], "alpha")
        bgs = _listed(folders["bg"])
        tr, va = split_indices(len(pairs), val_fraction, seed)
        make = lambda idx, train: CompositeFolder([pairs[i] for i in idx], bgs, aug, seed, train,  # noqa: E731
                                                  f"{root} (composite, {len(idx)} fg over {len(bgs)} bg)")
        return make(tr, True), (make(va, False) if va else None)
    target = "matte" if kind == "matting" else "mask"
    pairs = pair_by_stem(folders["image"], folders[target], target)
    tr, va = split_indices(len(pairs), val_fraction, seed)
    make = lambda idx, train: MattingFolder([pairs[i] for i in idx], aug, seed, train,  # noqa: E731
                                            binary=kind == "segmentation",
                                            description=f"{root} ({kind}, {len(idx)} pairs)")
    return make(tr, True), (make(va, False) if va else None)
