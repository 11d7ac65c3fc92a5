"""Rebuild this folder from its sources: photos with no person in them, license-clean, downscaled.

Run from a Debian machine with network access to Debian's archive and PyPI (a development step, never
run by the toolkit): ``python data/person-free/build.py``.  It downloads the Debian packages and wheels
named in SOURCES, extracts the named files, checks each one's sha256 against the record, downscales
it so the short side is 512 px (Lanczos, JPEG quality 90) and rewrites RECORD.csv.

Two splits, decided by license and by what the built-in weights may learn from:

* ``train/``: public domain, CC0, CC-BY and Expat photos: ``train starter`` composites people over them
  and trains on them alone as negatives (an all-zero matte);
* ``eval/``: photos under copyleft licenses (LGPL-3, GPL-2+, CC-BY-SA) and the permissive photos held out
  for the packaged parity images: only ever *measured* (share of pixels marked person), never trained on,
  so no weights we ship derive from them.
"""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
SHORT_SIDE = 512

LOMIRI = "lomiri-wallpapers-16.04"
LOMIRI_DIR = "usr/share/backgrounds"
PLASMA = "plasma-workspace-wallpapers"
MATE = "mate-backgrounds"
MATE_DIR = "usr/share/backgrounds/mate/nature"

# (split, package kind, package, path inside it, license, author)
SOURCES: list[tuple[str, str, str, str, str, str]] = [
    # --- permissive: may be trained on ---
    ("train", "deb", LOMIRI, f"{LOMIRI_DIR}/Picture_1A_by_freespace.jpg", "CC-BY-4.0", 'Trevor "Freespace", 2018'),
    ("train", "deb", LOMIRI, f"{LOMIRI_DIR}/Wine_by_Jakkub_Mede.jpg", "CC-BY-4.0", "Jakub Mede, 2018"),
    ("train", "deb", LOMIRI, f"{LOMIRI_DIR}/seeding_by_Clements_Engelhardt.jpg", "CC0-1.0", "Clemens Engelhardt, 2018"),
    ("train", "deb", LOMIRI, f"{LOMIRI_DIR}/aitzgorri_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
    ("train", "deb", LOMIRI, f"{LOMIRI_DIR}/friends_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
    ("train", "deb", LOMIRI, f"{LOMIRI_DIR}/picosdeeuropa_by_Aitzol_Berasategi.jpg", "CC-BY-4.0",
     "Aitzol Berasategi, 2018"),
    ("train", "deb", LOMIRI, f"{LOMIRI_DIR}/Picture_0B_by_freespace.jpg", "CC-BY-4.0", 'Trevor "Freespace", 2018'),
    ("train", "deb", LOMIRI, f"{LOMIRI_DIR}/life_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
    ("train", "wheel", "scikit-image==0.26.0", "skimage/data/coffee.png", "CC0-1.0", "Rachel Michetti"),
    ("train", "wheel", "scikit-image==0.26.0", "skimage/data/chelsea.png", "CC0-1.0", "Stefan van der Walt"),
    ("train", "wheel", "scikit-image==0.26.0", "skimage/data/rocket.jpg", "public domain", "SpaceX"),
    ("train", "wheel", "scikit-image==0.26.0", "skimage/data/brick.png", "CC0-1.0", "CC0Textures (Bricks25)"),
    ("train", "wheel", "scikit-image==0.26.0", "skimage/data/grass.png", "CC0-1.0", "CC0Textures"),
    ("train", "wheel", "scikit-image==0.26.0", "skimage/data/gravel.png", "CC0-1.0", "CC0Textures (Gravel04)"),
    ("train", "wheel", "scikit-learn==1.9.1", "sklearn/datasets/images/flower.jpg", "CC-BY-2.0",
     "vultilion (Flickr), retrieved by Robert Layton"),
    # --- evaluation only: copyleft, or held out for the packaged parity photos ---
    ("eval", "deb", LOMIRI, f"{LOMIRI_DIR}/sunset_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
    ("eval", "wheel", "scikit-learn==1.9.1", "sklearn/datasets/images/china.jpg", "CC-BY-2.0",
     "danielbuechele (Flickr), retrieved by Robert Layton"),
    ("eval", "deb", LOMIRI, f"{LOMIRI_DIR}/Dragonfly_by_Bolly.jpg", "CC-BY-SA-4.0", '"Bolly", 2018'),
    ("eval", "deb", LOMIRI, f"{LOMIRI_DIR}/Bridge_by_Sander_Klootwijk.jpg", "CC-BY-SA-4.0", "Sander Klootwijk, 2018"),
    ("eval", "deb", "lomiri-wallpapers-20.04", f"{LOMIRI_DIR}/Kleiber_by_Lukas_Baubkus.jpg", "CC-BY-SA-3.0",
     "Lukas Baubkus, 2021"),
    *[("eval", "deb", PLASMA, f"usr/share/wallpapers/{name}/contents/images/{size}", "LGPL-3.0", author)
      for name, size, author in [
          ("BytheWater", "2560x1600.jpg", "Maciej Wiklo"), ("ColdRipple", "2560x1600.jpg", "Risto Saukonpää"),
          ("ColorfulCups", "2560x1600.jpg", "Dmitri Popov"), ("DarkestHour", "2560x1600.jpg", "Risto Saukonpää"),
          ("EveningGlow", "2560x1600.jpg", "Ian Hex"), ("FallenLeaf", "2560x1600.jpg", "Martin Klapetek"),
          ("Grey", "2560x1600.jpg", "Sigi Sagi"), ("Kite", "2560x1600.jpg", "Risto Saukonpää"),
          ("OneStandsOut", "2560x1600.jpg", "Risto Saukonpää"), ("Path", "2560x1600.jpg", "Risto Saukonpää"),
          ("summer_1am", "2560x1600.jpg", "Risto Saukonpää")]],
    *[("eval", "deb", MATE, f"{MATE_DIR}/{name}.jpg", "GPL-2.0-or-later", "MATE backgrounds contributors")
      for name in ("Garden", "Dune", "Wood", "Aqua", "TwoWings", "Storm", "GreenMeadow", "RainDrops", "Blinds",
                   "LadyBird", "YellowFlower")],
]


def fetch(kind: str, package: str, work: Path) -> Path:
    """The extracted package folder (downloaded once per build)."""
    target = work / package.replace("=", "_")
    if target.is_dir():
        return target
    target.mkdir(parents=True)
    if kind == "deb":
        subprocess.run(["apt-get", "download", package], cwd=work, check=True)
        deb = next(work.glob(f"{package}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    else:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", package, "-d", str(work)], check=True)
        name = package.split("==")[0].replace("-", "_")
        wheel = next(work.glob(f"{name}-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            z.extractall(target)
    return target


def out_name(path: str) -> str:
    parts = Path(path).parts
    if "wallpapers" in parts:  # plasma: the wallpaper's folder names it
        return parts[parts.index("wallpapers") + 1]
    return Path(path).stem


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as td:
        work = Path(td)
        for split, kind, package, path, license_, author in SOURCES:
            src = fetch(kind, package, work) / path
            digest = hashlib.sha256(src.read_bytes()).hexdigest()
            im = Image.open(src).convert("RGB")
            scale = SHORT_SIDE / min(im.size)
            if scale < 1:
                im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
            dest = HERE / split / f"{out_name(path)}.jpg"
            dest.parent.mkdir(exist_ok=True)
            im.save(dest, quality=90)
            rows.append({"file": f"{split}/{dest.name}", "split": split, "license": license_, "author": author,
                         "source": f"{'Debian package' if kind == 'deb' else 'PyPI wheel'} {package}: {path}",
                         "source_sha256": digest,
                         "sha256": hashlib.sha256(dest.read_bytes()).hexdigest(),
                         "size": f"{im.width}x{im.height}"})
    with open(HERE / "RECORD.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} photos written; see RECORD.csv")


if __name__ == "__main__":
    main()
