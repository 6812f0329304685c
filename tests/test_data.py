"""Loading real image files: modes, transforms, and every kind of bad input with its message."""

import albumentations as A
import numpy as np
import pytest
import torch
from albumentations.pytorch import ToTensorV2
from PIL import Image

from harness.catalog import EFFICIENTNETV2, FASTVIT, KVASIR_CLASSES
from harness.data import kvasir, loading, named, synthetic
from harness.data.decode import load_rgb
from harness.data.device import DeviceNormalize
from harness.data.imagefolder import left_out_line, scan
from harness.data.transforms import eval_transform, train_transform
from harness.data.verify import verified_marker
from harness.errors import DataError
from harness.results.record import RunResult
from harness.spec import SpecError, aug
from tests.conftest import make_image_folder, tiny_spec
from tests.test_fail_fast import run_cli, tiny_run_args

STATS = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def test_grayscale_palette_and_rgba_images_load_as_rgb(tmp_path):
    base = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    for mode in ("L", "P", "RGBA", "RGB"):
        image = base.convert(mode)
        image.save(tmp_path / f"{mode}.png")
        array = load_rgb(str(tmp_path / f"{mode}.png"))
        assert array.shape == (20, 30, 3) and array.dtype == np.uint8


def test_transforms_give_uint8_tensors_of_the_recipe_size_normalised_on_the_device():
    recipe = EFFICIENTNETV2.recipe.__class__(**{**EFFICIENTNETV2.recipe.__dict__, "image_size": 48})
    image = np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    out = train_transform(recipe)(image=image)["image"]
    assert isinstance(out, torch.Tensor) and out.shape == (3, 48, 48) and out.dtype == torch.uint8
    first, second = (eval_transform(recipe)(image=image)["image"] for _ in range(2))
    assert torch.equal(first, second)  # eval is resize only: deterministic
    # on the device: the same arithmetic as albumentations' Normalize on the host
    host = A.Compose([A.Resize(48, 48), A.Normalize(mean=STATS[0], std=STATS[1]), ToTensorV2()])(image=image)["image"]
    device = DeviceNormalize(STATS)(first.unsqueeze(0))[0]
    assert device.dtype == torch.float32 and torch.allclose(device, host, atol=1e-5)
    assert DeviceNormalize(STATS, channels_last=True)(first.unsqueeze(0)).is_contiguous(
        memory_format=torch.channels_last
    )
    with pytest.raises(TypeError, match="uint8"):
        DeviceNormalize(STATS)(device.unsqueeze(0))


def test_random_resized_crop_recipe_builds():
    recipe = FASTVIT.recipe.__class__(**{**FASTVIT.recipe.__dict__, "image_size": 32})
    image = np.zeros((50, 60, 3), dtype=np.uint8)
    assert train_transform(recipe)(image=image)["image"].shape == (3, 32, 32)


@pytest.mark.parametrize(
    "item, message",
    [(aug("MagicFlip"), "no transform named 'MagicFlip'"), (aug("Rotate", limt=15), "Rotate has no parameter 'limt'")],
)
def test_unknown_augmentation_or_parameter_is_named(item, message):
    """A recipe made in Python (not through a recipe file) is checked when its pipeline is built."""
    recipe = tiny_spec().recipe.__class__(**{**tiny_spec().recipe.__dict__, "train_augmentations": (item,)})
    with pytest.raises(SpecError, match=message):
        train_transform(recipe)


def test_bundle_splits_and_serves_samples(tiny_folder):
    bundle = loading.build(tiny_folder, tiny_spec().recipe, STATS)
    assert bundle.classes == ("a", "b", "c", "d", "e", "f")
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 72
    image, label = bundle.val[0]
    assert image.shape == (3, 32, 32) and 0 <= label < 6


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"does not exist; give an ImageFolder directory .*--data for `harness run`"):
        scan(tmp_path / "nowhere")


def test_empty_class_folder(tmp_path):
    root = make_image_folder(tmp_path / "d", {"cats": 3, "dogs": 3})
    (root / "birds").mkdir()
    with pytest.raises(DataError, match=r"no images in .*: birds; add images"):
        scan(root)


def _with_files_of_other_kinds(root):
    """GIFs, a note and a Windows thumbnail cache beside the PNGs; PPM and PGM files, which torchvision reads."""
    make_image_folder(root, {"cats": 3, "dogs": 3})
    for name in ("cats/anim.gif", "dogs/still.gif"):
        Image.new("P", (40, 40), 3).save(root / name)
    (root / "dogs" / "notes.txt").write_text("scraped 2024")
    (root / "dogs" / "Thumbs.db").write_bytes(b"\0" * 64)
    Image.new("RGB", (40, 40), (200, 10, 10)).save(root / "cats" / "red.ppm")
    Image.new("L", (40, 40), 90).save(root / "dogs" / "grey.pgm")
    return root


def test_files_torchvision_would_not_read_are_named_in_one_line_not_left_out_in_silence(tmp_path):
    """`.gif` files were left out without a word. The harness reads what torchvision's ImageFolder
    reads (its IMG_EXTENSIONS, .ppm and .pgm included; no .gif, as in timm's), and names the rest."""
    index = scan(_with_files_of_other_kinds(tmp_path / "d"))
    assert len(index.samples) == 8 and {p.rsplit(".", 1)[1] for p, _ in index.samples} == {"png", "ppm", "pgm"}
    assert load_rgb(str(tmp_path / "d" / "dogs" / "grey.pgm")).shape == (40, 40, 3)
    assert index.left_out == ("cats/anim.gif", "dogs/Thumbs.db", "dogs/notes.txt", "dogs/still.gif")
    assert (
        left_out_line(index)
        == "4 files in the class folders are not images of a kind read here and are left out (.gif: 2, .db: 1,"
        " .txt: 1; "
        "e.g. cats/anim.gif); the kinds read are torchvision ImageFolder's: .jpg, .jpeg, .png, .ppm, .bmp, .pgm, .tif, "
        ".tiff, .webp; convert the images among them (e.g. to PNG) to train on them, or remove them"
    )
    assert left_out_line(scan(make_image_folder(tmp_path / "plain", {"a": 2, "b": 2}))) is None


def test_a_run_names_the_files_it_leaves_out_and_the_record_counts_them(tmp_path, capsys):
    folder = _with_files_of_other_kinds(tmp_path / "d")
    code, out, err = run_cli(capsys, *tiny_run_args(folder, tmp_path, "--split", "0.5,0.25,0.25"))
    assert code == 0, err
    (line,) = [line for line in out.splitlines() if line.startswith("[trainbench] left out: ")]
    assert line.startswith("[trainbench] left out: 4 files in the class folders are not images of a kind read here")
    record = next(line.removeprefix("record: ") for line in out.splitlines() if line.startswith("record: "))
    assert RunResult.load(record).data["left_out"] == {".gif": 2, ".db": 1, ".txt": 1}


def test_a_class_folder_of_only_other_kinds_says_what_it_holds(tmp_path):
    root = make_image_folder(tmp_path / "d", {"cats": 3, "dogs": 3})
    (root / "birds").mkdir()
    Image.new("P", (40, 40), 3).save(root / "birds" / "flying.gif")
    with pytest.raises(DataError, match=r"no images in .*: birds \(1 file of a kind not read: \.gif\); add images"):
        scan(root)


def test_single_class(tmp_path):
    root = make_image_folder(tmp_path / "d", {"cats": 3})
    with pytest.raises(DataError, match="only one class \\(cats\\); classification needs at least 2"):
        scan(root)


def _truncated_jpeg(path, size=(96, 80)):
    """A JPEG whose header is valid and whose second half is missing."""
    pixels = np.random.default_rng(0).integers(0, 255, (*size[::-1], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def test_every_bad_file_is_listed_before_training_and_the_pass_is_remembered(tmp_path):
    root = make_image_folder(tmp_path / "d", {"cats": 4, "dogs": 4})
    (root / "dogs" / "broken.png").write_bytes(b"this is not a png")
    _truncated_jpeg(root / "cats" / "cut.jpg")
    recipe = tiny_spec().recipe
    with pytest.raises(
        DataError,
        match=r"2 of 10 images cannot be decoded: .*cut.jpg: image file is truncated.*broken.png.*delete or replace it",
    ):
        loading.check(root, recipe, tmp_path / "cache")
    (root / "dogs" / "broken.png").unlink()
    (root / "cats" / "cut.jpg").unlink()
    identity = loading.check(root, recipe, tmp_path / "cache")
    assert verified_marker(tmp_path / "cache", identity).is_file()


def test_hidden_entries_are_never_classes_or_samples(tmp_path):
    root = make_image_folder(tmp_path / "d", {"cats": 3, "dogs": 3})
    make_image_folder(root / ".ipynb_checkpoints", {"cats": 2})
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "cats" / "._000.png").write_bytes(b"\0\5\x16\7 AppleDouble")
    index = scan(root)
    assert index.classes == ("cats", "dogs") and len(index.samples) == 6


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    rgb = load_rgb(str(tmp_path / "deep.png"))
    assert rgb.dtype == np.uint8 and rgb.shape == (64, 64, 3)
    assert rgb.min() == 0 and rgb.max() == 255 and (rgb == 255).mean() < 0.01
    assert np.abs(rgb[..., 0].astype(int) - np.round(ramp / 257)).max() <= 1


def test_exif_orientation_is_applied(tmp_path):
    wide = np.zeros((20, 40, 3), dtype=np.uint8)
    wide[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(wide).save(tmp_path / "side.jpg", exif=exif, quality=95)
    shown = load_rgb(str(tmp_path / "side.jpg"))
    assert shown.shape == (40, 20, 3)  # portrait, as a viewer shows it
    assert shown[:20].mean() > 200 and shown[20:].mean() < 50  # the white half is now on top


def test_an_image_over_the_decompression_bomb_limit_names_the_file_and_the_variable(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "d", {"cats": 8, "dogs": 8}, size=(64, 64))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64x64 = 4096 pixels is over twice the limit
    with pytest.raises(
        DataError,
        match=(
            r"cats/000.png is over PIL's decompression-bomb limit .* raise the limit with TRAINBENCH_MAX_IMAGE_PIXELS"
        ),
    ):
        loading.check(root, tiny_spec().recipe, tmp_path / "cache")


def test_a_file_given_as_the_data_folder_says_it_is_a_file(tmp_path):
    (tmp_path / "data.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"data.zip is a file, not a folder"):
        scan(tmp_path / "data.zip")


def test_kvasir_lists_missing_classes(tmp_path):
    folder = tmp_path / kvasir.FOLDER_NAME
    make_image_folder(folder, dict.fromkeys(KVASIR_CLASSES[:6], 3))
    with pytest.raises(DataError, match="missing class folder\\(s\\) polyps, ulcerative-colitis"):
        kvasir.locate(tmp_path)
    with pytest.raises(DataError, match="needs --data-root"):
        kvasir.locate(None)


def test_kvasir_found_under_data_root_or_directly(tmp_path):
    folder = make_image_folder(tmp_path / kvasir.FOLDER_NAME, dict.fromkeys(KVASIR_CLASSES, 3))
    assert kvasir.locate(tmp_path) == folder and kvasir.locate(folder) == folder


@pytest.mark.slow
def test_generated_dataset_is_deterministic_and_cached(tmp_path):
    first = synthetic.ensure("synthetic", tmp_path / "a")
    second = synthetic.ensure("synthetic", tmp_path / "b")
    files = sorted(p.relative_to(first) for p in first.rglob("*.*"))
    assert files == sorted(p.relative_to(second) for p in second.rglob("*.*"))
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files[:20])
    index = scan(first)
    assert index.class_counts() == dict.fromkeys(synthetic.DATASETS["synthetic"].classes, 60)
    assert synthetic.ensure("synthetic", tmp_path / "a") == first  # cached: no regeneration
    modes = {Image.open(p).mode for p in list(first.rglob("*.*"))[:30]}
    assert {"RGB", "L", "P", "RGBA"} <= modes


@pytest.mark.slow
def test_kvasir_standin_goes_through_the_kvasir_checks(tmp_path):
    folder = named.locate("kvasir-synthetic", None, tmp_path)
    assert scan(folder).classes == KVASIR_CLASSES


@pytest.mark.parametrize("size, world", [(45, 2), (10, 3), (2, 5), (7, 4), (36, 2)])
def test_the_padding_mask_marks_exactly_the_samplers_repeats(size, world):
    """Under DDP every image counts once in the training metrics: what the mask leaves is each
    sample exactly once, what it marks is DistributedSampler's padding, batch by batch too."""
    from collections import Counter

    from harness.data.loading import EpochSampler

    counted, padded = Counter(), 0
    for rank in range(world):
        sampler = EpochSampler(list(range(size)), num_replicas=world, rank=rank, shuffle=True, seed=3)
        sampler.set_epoch(1)
        keys = [i for i, _ in sampler]
        whole = sampler.padding(0, len(keys))
        whole = torch.zeros(len(keys), dtype=torch.bool) if whole is None else whole
        in_batches = [sampler.padding(start, len(keys[start : start + 3])) for start in range(0, len(keys), 3)]
        assert torch.equal(
            torch.cat(
                [
                    torch.zeros(3, dtype=torch.bool)[: len(keys[s : s + 3])] if m is None else m
                    for s, m in zip(range(0, len(keys), 3), in_batches, strict=True)
                ]
            ),
            whole,
        )
        padded += int(whole.sum())
        counted.update(i for i, repeat in zip(keys, whole.tolist(), strict=True) if not repeat)
    assert sorted(counted) == list(range(size)) and set(counted.values()) == {1}
    assert padded == -size % world
