"""Bad input is one line naming the file or option (exit 2 on the CLI, a typed error in the API), never
a traceback: each case here raised a raw TypeError, RuntimeError, IndexError or ValueError before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import modnet_edge
from modnet_edge.cli import main
from modnet_edge.core.errors import ModnetEdgeError
from modnet_edge.model.checkpoint import build_from_checkpoint, random_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad-input")
    ckpt = save_checkpoint(d / "ck.pt", build_from_checkpoint(random_checkpoint()))
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(d / "x.png")
    (d / "afile").write_text("not a folder")
    onnx = modnet_edge.export(ckpt, "onnx", "fp32", d / "m.onnx", static_shape=(64, 64))
    return {"dir": d, "ckpt": ckpt, "png": d / "x.png", "file": d / "afile", "onnx": onnx}


CLI_CASES = [
    ("train onto a file", ["train", "quick", "--max-steps", "1", "-o", "{file}"], "existing file"),
    ("predict below a file", ["predict", "{onnx}", "{png}", "-o", "{file}"], "is a file"),
    ("export below a file", ["export", "{ckpt}", "-o", "{file}/m.onnx"], "is a file"),
    ("--device for ONNX", ["predict", "{onnx}", "{png}", "-o", "{dir}/o1", "--device", "cuda"], "device"),
    ("--device garbage, checkpoint", ["predict", "{ckpt}", "{png}", "-o", "{dir}/o2", "--device", "garbage"],
     "garbage"),
    ("--device garbage, train", ["train", "quick", "--max-steps", "1", "-o", "{dir}/t", "--device", "garbage"],
     "garbage"),
    ("opset 99", ["export", "{ckpt}", "-o", "{dir}/o.onnx", "--opset", "99"], "opset"),
    ("batch -2", ["export", "{ckpt}", "-o", "{dir}/o.onnx", "--batch", "-2"], "batch"),
    ("batch 0", ["export", "{ckpt}", "-o", "{dir}/o.onnx", "--batch", "0"], "batch"),
    ("suffix of another format", ["export", "{ckpt}", "--format", "onnx", "-o", "{dir}/m.tflite"], ".onnx"),
]


@pytest.mark.parametrize("argv,needle", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_is_one_line_and_exit_2(files, argv, needle, capsys) -> None:
    argv = [a.format(**files) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"modnet-edge {argv[0]}: error:") and needle in err, err


API_CASES = [
    ("unknown load option", lambda f: modnet_edge.load(f["onnx"], foo=1), "foo"),
    ("bad optimization level", lambda f: modnet_edge.load(f["onnx"], optimization="max"), "optimization"),
    ("static shape of one number", lambda f: modnet_edge.export(f["ckpt"], "onnx", "fp32", f["dir"] / "q.onnx",
                                                                 static_shape=(128,)), "static_shape"),
    ("checkpoint of a wrong type", lambda f: modnet_edge.export(123, "onnx", "fp32", f["dir"] / "q.onnx"), "int"),
    ("device garbage", lambda f: modnet_edge.load_network(f["ckpt"], device="garbage"), "garbage"),
]


@pytest.mark.parametrize("call,needle", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_api_bad_input_raises_the_toolkits_typed_errors(files, call, needle) -> None:
    with pytest.raises(ModnetEdgeError, match=needle):
        call(files)


def test_a_closed_pil_image_is_a_clear_error(files) -> None:
    im = Image.open(files["png"])
    im.close()
    with modnet_edge.load(files["onnx"]) as predictor, pytest.raises(modnet_edge.InputImageError, match="closed"):
        predictor.predict(im)


def test_checkpoint_messages_say_what_the_file_is(tmp_path) -> None:
    """Pickled code: refused as code, without torch's advice to load it unsafely; JSON: named as text."""
    import os

    import torch

    from modnet_edge.core.errors import CheckpointError
    from modnet_edge.model.checkpoint import read_checkpoint

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo never run",))

    torch.save({"state_dict": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="pickled Python objects or code") as info:
        read_checkpoint(tmp_path / "evil.pt")
    assert "weights_only=False" not in str(info.value) and "likely succeed" not in str(info.value)
    (tmp_path / "cfg.pt").write_text('{"lr": 0.01}')
    with pytest.raises(CheckpointError, match=r"text \(JSON\?\)"):
        read_checkpoint(tmp_path / "cfg.pt")


def test_a_replaced_reference_checkpoint_is_named_as_replaced(files, tmp_path) -> None:
    from modnet_edge.core.errors import CheckpointError

    ckpt = save_checkpoint(tmp_path / "ref.pt", build_from_checkpoint(random_checkpoint(3)))
    art = modnet_edge.export(ckpt, "onnx", "fp32", tmp_path / "a.onnx", static_shape=(64, 64))
    save_checkpoint(tmp_path / "ref.pt", build_from_checkpoint(random_checkpoint(4)))  # replaced after export
    with pytest.raises(CheckpointError, match="not the file this artifact was exported from"):
        modnet_edge.parity([art], images=[files["png"]], progress=False)


def test_an_unreadable_image_in_a_data_folder_is_named(tmp_path) -> None:
    from modnet_edge.core.errors import DataError
    from modnet_edge.training.datasets import check_matte_header

    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(DataError, match=r"a\.jpg: unreadable image"):
        check_matte_header(tmp_path / "a.jpg", tmp_path / "a.png")
