"""Checkpoint uploads to a Google Cloud Storage bucket, in the background, never fatal.

google-cloud-storage does the work: its client finds credentials in the usual places (or talks to
an emulator named by STORAGE_EMULATOR_HOST) and its DEFAULT_RETRY retries transient failures with
exponential backoff. Uploads run on one background thread so training never waits for them; a
failure is printed and collected (`failures`), never raised into training. Credentials are never
printed nor written anywhere.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path


class BucketURLError(ValueError):
    """The bucket option is not a gs:// URL."""


class BucketAccessError(ValueError):
    """The bucket cannot be written before training starts (credentials, name, permission, network)."""

PROBE_TIMEOUT_S = 30.0


def _client_library():
    """google-cloud-storage and its retry policy, imported only when a bucket is used (it is an
    optional dependency: `pip install 'trainbench[gcs]'`)."""
    try:
        from google.cloud import storage
        from google.cloud.storage.retry import DEFAULT_RETRY
    except ImportError:
        raise BucketAccessError(
            "--gcs-bucket needs google-cloud-storage, which is not installed; pip install 'trainbench[gcs]' (or google-cloud-storage), or drop --gcs-bucket"
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
        self.cpu_s = 0.0  # the upload thread's CPU time: what uploads take from this machine (the bucket's side is not counted)
        self._bucket = None

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
        self._pending.append(self._executor.submit(self._upload, local, name, copies))

    def download(self, name: str, destination: Path) -> bool:
        """Fetch `prefix/name` into `destination`; False when it does not exist or cannot be read."""
        try:
            blob = self._client_bucket().blob(self.object_name(name))
            destination.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(destination), retry=self.retry, timeout=self.timeout_s)
            return True
        except Exception as error:
            print(f"[trainbench] no {name} in gs://{self.bucket_name}/{self.prefix}: {type(error).__name__}", flush=True)
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
                f"--gcs-bucket gs://{self.bucket_name}/{self.prefix} cannot be written ({reason}); check the bucket name and the credentials "
                "(GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default login`), or drop --gcs-bucket"
            ) from None

    def finish(self) -> list[UploadFailure]:
        """Wait for every queued upload; return what failed."""
        for future in self._pending:
            future.result()
        self._pending.clear()
        self._executor.shutdown(wait=True)
        return list(self.failures)
