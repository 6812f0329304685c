"""Checkpoint uploads to a Google Cloud Storage bucket, in the background, never fatal.

google-cloud-storage does the work: its client finds credentials in the usual places (or talks to
an emulator named by STORAGE_EMULATOR_HOST) and its DEFAULT_RETRY retries transient failures with
exponential backoff. Uploads run on one background thread so training never waits for them; a
failure is printed and collected (`failures`), never raised into training. Credentials are never
printed nor written anywhere.

Interrupts lose nothing: after a Ctrl-C the command line waits for the uploads still queued
(`wait_after_interrupt`, which says what it waits for); a second Ctrl-C leaves them local, names
them, and writes them into `.not-uploaded.json` beside the checkpoints, so the next run with the
same bucket uploads them before it trains (`catch_up`). A SIGTERM is a first Ctrl-C whose wait
ends by itself (`harness.interrupts`).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
import weakref
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from harness import interrupts
from harness.atomic import written_atomically
from harness.errors import BucketAccessError, BucketURLError
from harness.settings import environment

NOT_UPLOADED = ".not-uploaded.json"  # beside a run's checkpoints: uploads a second Ctrl-C left local
_ACTIVE: weakref.WeakSet[BucketUploader] = weakref.WeakSet()  # uploaders with work queued in this process


PROBE_TIMEOUT_S = 30.0


def _client_library():
    """google-cloud-storage and its retry policy, imported only when a bucket is used (it is an
    optional dependency: `pip install 'trainbench[gcs]'`)."""
    try:
        from google.cloud import storage
        from google.cloud.storage.retry import DEFAULT_RETRY
    except ImportError:
        raise BucketAccessError(
            "--gcs-bucket needs google-cloud-storage, which is not installed; pip install 'trainbench[gcs]' (or"
            " google-cloud-storage), or drop --gcs-bucket"
        ) from None
    return storage, DEFAULT_RETRY


def parse_url(url: str) -> tuple[str, str]:
    """`gs://bucket/some/prefix` -> ("bucket", "some/prefix")."""
    if not url.startswith("gs://") or len(url) <= len("gs://"):
        raise BucketURLError(f"--gcs-bucket must look like gs://BUCKET[/PREFIX], got {url!r}")
    bucket, _, prefix = url[len("gs://") :].partition("/")
    return bucket, prefix.strip("/")


@dataclass(frozen=True)
class UploadFailure:
    object_name: str
    error: str

    def as_dict(self) -> dict[str, str]:
        return {"object": self.object_name, "error": self.error}


class BucketUploader:
    """Uploads files under `gs://bucket/prefix/` on a background thread, with retries."""

    def __init__(self, url: str, retry_timeout_s: float = 120.0) -> None:
        self.bucket_name, self.prefix = parse_url(url)
        self._storage, self._default_retry = _client_library()
        self.retry = self._default_retry.with_timeout(retry_timeout_s)
        self.timeout_s = min(60.0, retry_timeout_s)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gcs-upload")
        self._pending: list[Future] = []
        self.failures: list[UploadFailure] = []
        # the upload thread's CPU time: what uploads take from this machine (the bucket's side is not counted)
        self.cpu_s = 0.0
        self._bucket = None
        self._queued: dict[Future, tuple[str, str, tuple[str, ...]]] = {}  # upload -> (local file, name, copies)
        _ACTIVE.add(self)

    @property
    def url(self) -> str:
        return f"gs://{self.bucket_name}/{self.prefix}" if self.prefix else f"gs://{self.bucket_name}"

    def unfinished(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(local file, name, copies) of every upload queued and not yet done."""
        return [item for future, item in self._queued.items() if not future.done()]

    def object_name(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _client_bucket(self):
        if self._bucket is None:
            self._bucket = self._storage.Client().bucket(self.bucket_name)
        return self._bucket

    def _fail(self, object_name: str, error: Exception) -> None:
        failure = UploadFailure(f"gs://{self.bucket_name}/{object_name}", f"{type(error).__name__}: {error}"[:500])
        self.failures.append(failure)
        print(f"[trainbench] upload to {failure.object_name} failed, local copy kept: {failure.error}", flush=True)

    def _upload(self, local: Path, name: str, copies: tuple[str, ...]) -> None:
        cpu = time.thread_time()
        try:
            self._upload_with_copies(local, name, copies)
        finally:
            self.cpu_s += time.thread_time() - cpu

    def _upload_with_copies(self, local: Path, name: str, copies: tuple[str, ...]) -> None:
        object_name = self.object_name(name)
        try:
            bucket = self._client_bucket()
            blob = bucket.blob(object_name)
            blob.upload_from_filename(str(local), retry=self.retry, timeout=self.timeout_s)
        except Exception as error:  # any failure of the bucket must not reach training
            for target in (name, *copies):
                self._fail(self.object_name(target), error)
            return
        for copy in copies:  # server-side copy: no second transfer
            try:
                bucket.copy_blob(blob, bucket, self.object_name(copy), retry=self.retry, timeout=self.timeout_s)
            except Exception as error:
                self._fail(self.object_name(copy), error)

    def upload(self, local: Path, name: str, copies: tuple[str, ...] = ()) -> None:
        """Queue `local` for upload as `prefix/name` (then server-side copies as `prefix/<copy>`);
        returns at once. `local` must not change afterwards."""
        future = self._executor.submit(self._upload, local, name, copies)
        self._pending.append(future)
        self._queued[future] = (str(local), name, tuple(copies))

    def download(self, name: str, destination: Path) -> bool:
        """Fetch `prefix/name` into `destination`; False when it does not exist or cannot be read."""
        try:
            blob = self._client_bucket().blob(self.object_name(name))
            destination.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(destination), retry=self.retry, timeout=self.timeout_s)
            return True
        except Exception as error:
            print(
                f"[trainbench] no {name} in gs://{self.bucket_name}/{self.prefix}: {type(error).__name__}", flush=True
            )
            destination.unlink(missing_ok=True)
            return False

    def probe(self) -> None:
        """Write and delete one small object under the prefix, before any training: a bucket that
        cannot take a checkpoint (no credentials, a wrong name, no permission) is a BucketAccessError
        now rather than a failed upload after the first epoch."""
        name = self.object_name(f".trainbench-probe-{uuid.uuid4().hex}")
        retry = self._default_retry.with_timeout(min(PROBE_TIMEOUT_S, self.retry.timeout))
        try:
            blob = self._client_bucket().blob(name)
            blob.upload_from_string(b"trainbench write check", retry=retry, timeout=self.timeout_s)
            blob.delete(retry=retry, timeout=self.timeout_s)
        except Exception as error:  # DefaultCredentialsError, NotFound, Forbidden, a connection error
            reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
            raise BucketAccessError(
                f"--gcs-bucket gs://{self.bucket_name}/{self.prefix} cannot be written ({reason}); check the bucket"
                " name and the credentials (GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default"
                " login`), or drop --gcs-bucket"
            ) from None

    def finish(self) -> list[UploadFailure]:
        """Wait for every queued upload; return what failed."""
        for future in self._pending:
            future.result()
        self._pending.clear()
        self._executor.shutdown(wait=True)
        _ACTIVE.discard(self)
        return list(self.failures)

    def leave_local(self) -> list[str]:
        """Give up the uploads not done (the one in flight finishes or fails on its own): each run's
        folder gets a `.not-uploaded.json` naming them; returns their gs:// names."""
        left = self.unfinished()
        self._executor.shutdown(wait=False, cancel_futures=True)
        _ACTIVE.discard(self)
        by_folder: dict[Path, list] = {}
        for local, name, copies in left:
            by_folder.setdefault(Path(local).parent, []).append([local, name, list(copies)])
        for folder, uploads in by_folder.items():
            manifest = folder / NOT_UPLOADED
            known = json.loads(manifest.read_text())["uploads"] if manifest.is_file() else []
            with written_atomically(manifest) as tmp:
                tmp.write_text(json.dumps({"bucket": self.url, "uploads": known + uploads}, indent=1))
        return [f"gs://{self.bucket_name}/{self.object_name(name)}" for _, name, _ in left]

    def catch_up(self, folders: Iterable[Path]) -> None:
        """Before training: upload what an interrupted run left local for this bucket (the
        `.not-uploaded.json` files under `folders`), and wait for it."""
        manifests = [m for folder in folders if Path(folder).is_dir() for m in Path(folder).glob(f"*/{NOT_UPLOADED}")]
        for manifest in manifests:
            found = json.loads(manifest.read_text())
            if found.get("bucket") != self.url:
                continue
            # epoch files only: the bucket's last.ckpt may since have moved on (a resume elsewhere),
            # and an older one must not replace it
            uploads = [(Path(local), name, ()) for local, name, _ in found["uploads"] if Path(local).is_file()]
            print(
                f"[trainbench] uploading {len(uploads)} checkpoint(s) an interrupted run left local to {self.url}:"
                f" {', '.join(name for _, name, _ in uploads)}",
                flush=True,
            )
            failed = len(self.failures)
            for local, name, copies in uploads:
                self.upload(local, name, copies)
            wait(self._pending)
            if len(self.failures) == failed:
                manifest.unlink(missing_ok=True)


def wait_after_interrupt() -> None:
    """After a first Ctrl-C: wait for the uploads still queued, saying so; a second Ctrl-C leaves
    them local (`BucketUploader.leave_local`), names them and ends the process at once (the upload
    in flight cannot be stopped, only left behind). After a SIGTERM the wait ends by itself after
    `interrupts.TERM_WAIT_S` (TRAINBENCH_TERM_WAIT_S where the grace period differs), before the scheduler's
    SIGKILL, the same way."""
    busy = [uploader for uploader in list(_ACTIVE) if uploader.unfinished()]
    if not busy:
        return
    waiting, urls = sum(len(u.unfinished()) for u in busy), ", ".join(u.url for u in busy)
    bound = (environment().term_wait_s or interrupts.TERM_WAIT_S) if interrupts.terminated() else None
    then = f" for up to {bound:.0f} s, then leaving them local" if bound else "; Ctrl-C again to leave them local"
    print(f"{interrupts.what()}: uploading {waiting} checkpoint(s) to {urls}{then}", file=sys.stderr, flush=True)
    deadline = None if bound is None else time.monotonic() + bound
    try:
        for uploader in busy:
            left_s = None if deadline is None else max(0.0, deadline - time.monotonic())
            wait([f for f in uploader._queued if not f.done()], timeout=left_s)
    except KeyboardInterrupt:
        _leave_local(busy, f"{interrupts.what()} again: not confirmed in the bucket")
    if any(uploader.unfinished() for uploader in busy):
        _leave_local(busy, f"{interrupts.what()}: not confirmed in the bucket after {bound:.0f} s")


def _leave_local(busy: list[BucketUploader], said: str) -> NoReturn:
    left = [name for uploader in busy for name in uploader.leave_local()]
    names = ", ".join(left)
    print(f"{said}, kept local: {names}; the next run with this bucket uploads them", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(interrupts.exit_status())  # the upload thread in flight would hold the interpreter's exit till its timeout
