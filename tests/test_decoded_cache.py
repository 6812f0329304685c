"""The decoded-image cache: decoded once at the size the recipe needs, shared, atomic, rebuilt on change."""

from __future__ import annotations

import json
import math
import os
import pickle
import time

import numpy as np
import pytest
import torch
from PIL import Image

from harness import runner
from harness.catalog import FASTVIT
from harness.data import content_hashes, decoded, loading
from harness.data.decode import load_rgb
from harness.data.fingerprint import fingerprint
from harness.data.imagefolder import scan
from harness.data.photos import generate_kvasir
from harness.data.transforms import eval_transform, needed_short_side
from harness.errors import DataError
from harness.spec import Split
from tests.conftest import make_image_folder, tiny_spec

STATS = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
SHARES = Split(0.5, 0.25, 0.25)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Four real-resolution stand-in JPEGs per Kvasir class (720x576 up to 1920x1072)."""
    return generate_kvasir(tmp_path_factory.mktemp("kvasir"), per_class=4, seed=3)


def _cache(folder, recipe, cache_dir):
    return loading.decoded_images(folder, recipe, fingerprint(folder), cache_dir, processes=1)


def test_the_stored_size_loses_nothing_the_transforms_use():
    plain = tiny_spec().recipe.__class__(**{**tiny_spec().recipe.__dict__, "image_size": 64})
    assert needed_short_side(plain) == 64
    crop = (
        FASTVIT.recipe
    )  # random-resized-crop at 384 px: its smallest crop, half the area at aspect 3/4, still spans 384 px
    side = needed_short_side(crop)
    assert side == math.ceil(384 / math.sqrt(0.5 * 0.75)) == 628
    assert math.sqrt(0.5 * side * side * 0.75) >= 384


def test_images_are_stored_at_the_needed_shorter_side_never_upscaled(tmp_path):
    folder = tmp_path / "mixed"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (100, 200, 3), dtype=np.uint8)).save(folder / "a" / "wide.jpg", quality=90)
    Image.fromarray(rng.integers(0, 255, (30, 20, 3), dtype=np.uint8)).save(folder / "b" / "small.png")
    recipe = tiny_spec().recipe.__class__(**{**tiny_spec().recipe.__dict__, "image_size": 32})
    images = _cache(folder, recipe, tmp_path / "cache")
    assert images.read(0).shape == (32, 64, 3)  # a/wide.jpg: 100x200 scaled to a shorter side of 32
    assert images.read(1).shape == (30, 20, 3)  # b/small.png: smaller than needed, kept as it is
    assert images.read(1).dtype == np.uint8


def test_the_cache_is_built_once_atomically_and_again_when_a_file_changes(tiny_folder, tmp_path):
    recipe, cache_dir = tiny_spec().recipe, tmp_path / "cache"
    first = _cache(tiny_folder, recipe, cache_dir)
    pixels = first.folder / decoded.PIXELS_FILE
    built = pixels.stat().st_mtime_ns
    assert first.meta()["images"] == 72 and first.meta()["short_side"] == 32
    assert (
        _cache(tiny_folder, recipe, cache_dir).folder == first.folder and pixels.stat().st_mtime_ns == built
    )  # not built again
    assert [p.name for p in (cache_dir / "decoded").iterdir()] == [first.folder.name]  # no temporary folder left behind
    changed = sorted((tiny_folder / "a").iterdir())[0]
    Image.new("RGB", (40, 40), (255, 0, 0)).save(changed)
    second = _cache(tiny_folder, recipe, cache_dir)
    assert second.folder != first.folder
    index = [path for path, _ in scan(tiny_folder).samples].index(str(changed))
    assert (second.read(index) == [255, 0, 0]).all()


@pytest.mark.slow
def test_cached_pixels_are_what_a_full_decode_gives(photos, tmp_path):
    """Draft-mode decoding and the stored size change pixels by rounding, not content: after the
    recipe's resize, pixels differ from the uncached path by 0.9 to 2.4 grey levels on average
    (measured; mostly sensor noise that the uncached path's bilinear downscale aliases and the
    cache's Lanczos filter does not) and brightness by under 0.15."""
    recipe = FASTVIT.recipe.__class__(
        **{**FASTVIT.recipe.__dict__, "image_size": 384, "train_crop": "resize", "split": SHARES}
    )
    cached = loading.build(photos, recipe, STATS, _cache(photos, recipe, tmp_path / "cache"))
    uncached = loading.build(photos, recipe, STATS)
    resize = eval_transform(recipe)
    for i in range(len(cached.train.index.samples)):
        full = resize(image=load_rgb(cached.train.index.samples[i][0]))["image"].float()
        fast = resize(image=cached.decoded.read(i))["image"].float()
        assert full.shape == fast.shape == (3, 384, 384)
        assert (full - fast).abs().mean() < 3.0 and (full.mean() - fast.mean()).abs() < 0.5, cached.train.index.samples[
            i
        ][0]
    assert uncached.decoded is None


@pytest.mark.parametrize("crop", ["resize", "random_resized_crop"])
def test_cached_and_uncached_paths_give_identical_tensors(photos, tmp_path, crop):
    """One pixel path per identity: --no-decode-cache reads each file at the size the cache stores
    (the run's fingerprint does not name the path, so the two must train on the same tensors)."""
    recipe = FASTVIT.recipe.__class__(
        **{**FASTVIT.recipe.__dict__, "image_size": 96, "train_crop": crop, "split": SHARES}
    )
    cached = loading.build(photos, recipe, STATS, _cache(photos, recipe, tmp_path / "cache"))
    uncached = loading.build(photos, recipe, STATS)
    assert uncached.decoded is None
    for i in range(len(cached.train)):
        for key in ((i, 0), (i, 1)):
            assert torch.equal(cached.train[key][0], uncached.train[key][0]), f"train sample {key}"
    for i in range(len(cached.test)):
        assert torch.equal(cached.test[i][0], uncached.test[i][0]), f"test sample {i}"


def test_loader_workers_share_the_map_instead_of_copying_pixels(photos, tmp_path):
    recipe = FASTVIT.recipe.__class__(**{**FASTVIT.recipe.__dict__, "split": SHARES})
    images = _cache(photos, recipe, tmp_path / "cache")
    bundle = loading.build(photos, recipe, STATS, images)
    first = bundle.val[0][0]  # opens the map in this process
    sent = pickle.dumps(bundle.val)  # what a loader worker receives
    assert len(sent) < images.meta()["bytes"] / 100
    in_worker = pickle.loads(sent)
    assert in_worker.read._pixels is None  # the worker maps the file itself, on first read
    assert (in_worker[0][0] == first).all()


def test_a_corrupt_file_is_named_while_building(tmp_path):
    folder = make_image_folder(tmp_path / "data", {"a": 3, "b": 3})
    (folder / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(DataError, match=r"broken\.jpg"):
        _cache(folder, tiny_spec().recipe, tmp_path / "cache")
    assert not (tmp_path / "cache" / "decoded").exists() or not any((tmp_path / "cache" / "decoded").iterdir())


def _cached_samples_match_their_files(folder, recipe, cache_dir) -> int:
    """Every sample of every part, read from the decoded cache, equals a fresh decode of its file."""
    identity = fingerprint(folder)
    bundle = loading.build(
        folder, recipe, STATS, loading.decoded_images(folder, recipe, identity, cache_dir, processes=1)
    )
    short_side = needed_short_side(recipe)
    for part in (bundle.train, bundle.val, bundle.test):
        for i in range(len(part)):
            path = part.index.samples[int(part.indices[i])][0]
            assert np.array_equal(part.pixels(i), load_rgb(path, short_side)), (
                f"cached pixels of {path} are another file's"
            )
    return identity.files


def test_a_symlinked_class_folder_is_part_of_the_identity_and_the_cache_is_never_stale(tmp_path):
    """The fingerprint skipped a linked class folder (data.files 100 for 150 trained), so after
    images were added inside it the stale cache gave an IndexError, and after some were removed,
    100 of 149 samples were fed another file's pixels."""
    make_image_folder(tmp_path / "elsewhere", {"c": 50}, size=(36, 36))
    folder = make_image_folder(tmp_path / "data", {"a": 50, "b": 50})
    (folder / "c").symlink_to(tmp_path / "elsewhere" / "c", target_is_directory=True)
    recipe, cache_dir = tiny_spec().recipe, tmp_path / "cache"
    assert len(scan(folder).samples) == 150
    assert _cached_samples_match_their_files(folder, recipe, cache_dir) == 150
    for i in range(10):  # added through the link
        Image.new("RGB", (36, 36), (i * 20, 0, 255)).save(tmp_path / "elsewhere" / "c" / f"new{i}.png")
    assert _cached_samples_match_their_files(folder, recipe, cache_dir) == 160
    for path in sorted((tmp_path / "elsewhere" / "c").iterdir())[:11]:
        path.unlink()
    assert _cached_samples_match_their_files(folder, recipe, cache_dir) == 149


def test_a_link_loop_is_refused_in_one_line(tmp_path):
    folder = make_image_folder(tmp_path / "data", {"a": 4, "b": 4})
    (folder / "a" / "again").symlink_to(folder, target_is_directory=True)
    for survey in (scan, fingerprint):
        with pytest.raises(
            DataError, match=r"a/again is a link to .*data, a folder it lies in: a link loop"
        ) as refused:
            survey(folder)
        assert "\n" not in str(refused.value)


@pytest.mark.parametrize("suffix", [".bmp", ".tif"])
def test_an_image_edited_in_place_past_its_first_4_kib_is_another_dataset(tmp_path, settings, suffix):
    """Uncompressed images keep their size when edited. The fingerprint read each file's first 4 KiB,
    so an edit past them kept the run's identity (an `-attempt2`), skipped the decode pass and trained
    on the old pixels from the decoded cache."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{i}{suffix}")
    settings, spec = settings.replace(data_root=tmp_path / "data"), tiny_spec()
    before = runner.prepare(spec, settings)
    image = tmp_path / "data" / "a" / f"0{suffix}"
    old = image.read_bytes()
    pixels = np.asarray(Image.open(image)).copy()
    late_rows = slice(0, 16) if suffix == ".bmp" else slice(48, 64)  # a BMP stores its rows bottom-up
    pixels[late_rows] = 255 - pixels[late_rows]
    Image.fromarray(pixels).save(image)
    new = image.read_bytes()
    assert len(new) == len(old) > 4096 and new[:4096] == old[:4096] and new != old
    after = runner.prepare(spec, settings)
    assert after.data.fingerprint != before.data.fingerprint and after.run_id != before.run_id
    images = loading.for_spec(spec, settings, STATS, after.data).decoded
    sample = [path for path, _ in scan(tmp_path / "data").samples].index(str(image))
    assert np.array_equal(images.read(sample), load_rgb(image, needed_short_side(spec.recipe)))


def test_a_damaged_or_unwritable_table_of_hashes_never_fails_a_run(tmp_path, capsys):
    """The table only saves reading: one that cannot be parsed is read as empty and written anew, and one
    that cannot be written (here its folder's name is taken by a file) is one warning line."""
    folder = make_image_folder(tmp_path / "data", {"a": 2, "b": 2})
    time.sleep(content_hashes.RACY_NS / 1e9 + 0.2)  # files written within RACY_NS of their hashing are not remembered
    expected = fingerprint(folder)
    damaged = tmp_path / "damaged"
    table = content_hashes.table_path(folder.resolve(), damaged)
    table.parent.mkdir(parents=True)
    table.write_text('{"a/000.png": [1, 2')
    assert fingerprint(folder, damaged) == expected
    assert sorted(json.loads(table.read_text())) == ["a/000.png", "a/001.png", "b/000.png", "b/001.png"]
    unwritable = tmp_path / "unwritable"
    unwritable.mkdir()
    (unwritable / content_hashes.TABLES).write_text("a file where the tables' folder goes")
    assert fingerprint(folder, unwritable) == expected
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "hashes" in line]
    assert line.startswith("[trainbench] warning: the table of file hashes") and "read in full next time" in line


def test_remembered_hashes_serve_unchanged_files_only(tmp_path):
    """Hashes are remembered per file so a run does not read the dataset again; a file written again
    with its size and modification time put back (`touch -r`, `cp -p`) is read again all the same."""
    folder, cache_dir = make_image_folder(tmp_path / "data", {"a": 2, "b": 2}), tmp_path / "cache"
    time.sleep(content_hashes.RACY_NS / 1e9 + 0.2)  # a file written within RACY_NS of its hashing is not remembered
    first = fingerprint(folder, cache_dir)
    table = json.loads(content_hashes.table_path(folder.resolve(), cache_dir).read_text())
    assert sorted(table) == ["a/000.png", "a/001.png", "b/000.png", "b/001.png"] and first == fingerprint(folder)
    image, old = folder / "a" / "000.png", (folder / "a" / "000.png").stat()
    content = bytearray(image.read_bytes())
    content[-100] ^= 0xFF
    image.write_bytes(bytes(content))
    os.utime(image, ns=(old.st_atime_ns, old.st_mtime_ns))
    now = image.stat()
    assert (now.st_size, now.st_mtime_ns, now.st_ino) == (old.st_size, old.st_mtime_ns, old.st_ino)
    edited = fingerprint(folder, cache_dir)
    assert edited.fingerprint != first.fingerprint and edited == fingerprint(folder)
    assert edited.file_hashes["a/000.png"] == content_hashes.sha256_of(image)
