"""lm-eval results logged as MLflow run artifacts: found, downloaded, ingested.

Teams often log their eval folders to the training run. For each new or changed
run, the artifact tree is walked breadth-first (bounded depth and listings, a
thread pool of list calls), every folder holding a ``results_*.json`` is downloaded
with its samples into a cache beside the database, and ingested through the one
lm-eval collector with the run's id, so the eval is linked to that run.

A run whose artifact URI is a local folder (a ``sqlite:///`` store's default, or a
server whose artifact root is a path) is listed on the file system directly, as
MLflow's own local repository would list it: a client call per run costs a run
lookup each, which for 10,000 runs took most of a full sync. Other known URIs (a
server's ``mlflow-artifacts:/``, object stores) are listed through their artifact
repository directly, one request per folder; runs without a known URI through the
client.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import requests
from mlflow.entities import FileInfo
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, UNAUTHENTICATED
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

from forgetwatch import settings
from forgetwatch.collectors import lm_eval_results
from forgetwatch.collectors.mlflow_access import is_access_error
from forgetwatch.collectors.report import Progress, SyncReport, no_progress

ARTIFACT_MAX_DEPTH = 4  # lm-eval writes <output_path>/<model>/results_*.json
ARTIFACT_MAX_LISTS = 200  # directory listings per run, so a huge artifact tree stays cheap
ARTIFACT_THREADS = 8
CACHE_DIR = "artifact-cache"
# HTTP answers that stop the whole sync, as the error codes MLflow's client would raise.
_ACCESS_CODES = {401: UNAUTHENTICATED, 403: PERMISSION_DENIED}


@dataclass(frozen=True)
class ArtifactFile:
    """One file of an lm-eval output folder found among a run's artifacts."""

    run_id: str
    path: str  # artifact path, relative to the run's artifact root
    size: int | None


@dataclass
class Listing:
    """One folder's listing: its files and subfolders, or why it could not be listed."""

    files: list[FileInfo]
    subdirs: list[str]
    error: str | None = None


def _list_dir(
    client: MlflowClient, run_id: str, path: str | None, repo: ArtifactRepository | None = None
) -> Listing:
    """One list call. A run whose artifacts fail is reported; 401/403 stop the sync.

    With the run's artifact repository at hand (built from the artifact URI the
    search returned), the call skips the run lookup ``client.list_artifacts`` makes
    first: one request per folder instead of two.
    """
    try:
        entries = repo.list_artifacts(path) if repo else client.list_artifacts(run_id, path)
    except requests.HTTPError as exc:  # an http artifact repository answers with requests' error
        status = exc.response.status_code if exc.response is not None else None
        if status in _ACCESS_CODES:
            raise MlflowException(str(exc), error_code=_ACCESS_CODES[status]) from exc
        return Listing([], [], f"run {run_id}: artifacts {path or '/'} unreadable ({exc})"[:400])
    except MlflowException as exc:
        if is_access_error(exc):
            raise
        return Listing([], [], f"run {run_id}: artifacts {path or '/'} unreadable ({exc})"[:400])
    files = [e for e in entries if not e.is_dir]
    return Listing(files, [e.path for e in entries if e.is_dir])


def local_root(artifact_uri: str) -> Path | None:
    """The folder behind a local artifact URI (an absolute path or ``file://``), else None."""
    if artifact_uri.startswith("/"):
        return Path(artifact_uri)
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(url2pathname(parsed.path))
    return None


def _list_local(root: Path, run_id: str, path: str | None) -> Listing:
    """A local artifact folder's listing, shaped as ``list_artifacts`` returns it:
    paths relative to the run's artifact root, no size for folders, nothing for a
    folder that does not exist."""
    folder = root / path if path else root
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        infos = [
            FileInfo(
                f"{path}/{e.name}" if path else e.name,
                e.is_dir(),
                None if e.is_dir() else e.stat().st_size,
            )
            for e in entries
        ]
    except (FileNotFoundError, NotADirectoryError):
        return Listing([], [])
    except OSError as exc:
        return Listing([], [], f"run {run_id}: artifacts {path or '/'} unreadable ({exc})"[:400])
    return Listing([i for i in infos if not i.is_dir], [i.path for i in infos if i.is_dir])


class _Lister:
    """Lists one folder of a run: on disk for a local artifact root, else through the run's
    artifact repository when its URI is known, else through the client."""

    def __init__(self, client: MlflowClient, artifact_uris: Mapping[str, str] | None) -> None:
        self.client = client
        self.local: dict[str, Path] = {}
        self.remote: dict[str, str] = {}
        for run_id, uri in (artifact_uris or {}).items():
            root = local_root(uri)
            if root is not None:
                self.local[run_id] = root
            else:
                self.remote[run_id] = uri
        self.repos: dict[str, ArtifactRepository | None] = {}

    def _repo(self, run_id: str) -> ArtifactRepository | None:
        if run_id not in self.repos:
            uri = self.remote.get(run_id)
            repo = None
            if uri:
                try:
                    repo = get_artifact_repository(uri, tracking_uri=self.client.tracking_uri)
                except MlflowException:  # a scheme with no repository here: the client decides
                    repo = None
            self.repos[run_id] = repo
        return self.repos[run_id]

    def __call__(self, item: tuple[str, str | None]) -> Listing:
        run_id, path = item
        root = self.local.get(run_id)
        if root is not None:
            return _list_local(root, run_id, path)
        return _list_dir(self.client, run_id, path, self._repo(run_id))


def find_result_files(
    client: MlflowClient,
    run_ids: list[str],
    pool: ThreadPoolExecutor,
    artifact_uris: Mapping[str, str] | None = None,
) -> tuple[list[ArtifactFile], list[str]]:
    """results_*.json and their samples_*.jsonl in every run's artifacts, plus listing errors.

    Breadth-first, one listing per folder, every run's folders of one depth
    listed in parallel; depth and listings per run are bounded. Local artifact
    roots are listed in this thread (no request to wait for), the others in ``pool``.
    """
    lister = _Lister(client, artifact_uris)
    frontier: list[tuple[str, str | None]] = [(run_id, None) for run_id in run_ids]
    listed = dict.fromkeys(run_ids, 0)
    found: list[ArtifactFile] = []
    errors: list[str] = []
    for _depth in range(ARTIFACT_MAX_DEPTH + 1):
        if not frontier:
            break
        local = [item for item in frontier if item[0] in lister.local]
        remote = [item for item in frontier if item[0] not in lister.local]
        listings = [*map(lister, local), *pool.map(lister, remote)]
        next_frontier: list[tuple[str, str | None]] = []
        for (run_id, _path), result in zip([*local, *remote], listings, strict=True):
            errors.extend([result.error] if result.error else [])
            found.extend(_lm_eval_files(run_id, result.files))
            for sub in result.subdirs:
                if listed[run_id] < ARTIFACT_MAX_LISTS:
                    listed[run_id] += 1
                    next_frontier.append((run_id, sub))
        frontier = next_frontier
    return found, errors


def _lm_eval_files(run_id: str, files: list[FileInfo]) -> list[ArtifactFile]:
    """The folder's results and samples files, if it holds a results file at all."""
    names = {f.path.rsplit("/", 1)[-1]: f for f in files}
    if not any(n.startswith("results_") and n.endswith(".json") for n in names):
        return []
    wanted = [
        f
        for n, f in names.items()
        if (n.startswith("results_") and n.endswith(".json"))
        or (n.startswith("samples_") and n.endswith(".jsonl"))
    ]
    return [ArtifactFile(run_id, f.path, f.file_size) for f in wanted]


def cache_root(db_path: str | os.PathLike[str] | None) -> Path:
    """``<database folder>/artifact-cache``: downloads live next to the data they feed."""
    return settings.db_path(db_path).resolve().parent / CACHE_DIR


def download(
    client: MlflowClient, files: list[ArtifactFile], root: Path, pool: ThreadPoolExecutor
) -> tuple[int, dict[str, str]]:
    """Fetch files into ``root/<run_id>/<artifact path>``, keeping same-size copies.

    Returns how many files were downloaded, and an error per run that lost a file
    (its folder is then not ingested: a results file without its samples would be).
    """

    def fetch(item: ArtifactFile) -> int | str:
        target = root / item.run_id / item.path
        if target.is_file() and item.size is not None and target.stat().st_size == item.size:
            return 0
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # A file artifact lands as dst_path/<its name>.
            client.download_artifacts(item.run_id, item.path, dst_path=str(target.parent))
        except MlflowException as exc:
            if is_access_error(exc):
                raise
            return f"run {item.run_id}: artifact {item.path} could not be downloaded ({exc})"
        except OSError as exc:
            return f"run {item.run_id}: artifact {item.path} could not be saved ({exc})"
        return 1

    outcomes = list(pool.map(fetch, files))
    failed = {
        item.run_id: out[:400]
        for item, out in zip(files, outcomes, strict=True)
        if isinstance(out, str)
    }
    return sum(out for out in outcomes if isinstance(out, int)), failed


def _note(report: SyncReport, line: str) -> None:
    """Eval counts are not run counts: they go to the report's notes, not its totals."""
    report.notes.append(line)


def ingest_artifacts(
    client: MlflowClient,
    db_path: str | os.PathLike[str] | None,
    run_ids: list[str],
    report: SyncReport,
    progress: Progress = no_progress,
    artifact_uris: Mapping[str, str] | None = None,
) -> None:
    """Download lm-eval outputs logged to these runs and ingest them with the run's id.

    ``artifact_uris`` (run id -> artifact URI) is what the run search reported;
    runs missing from it are listed through the client.
    """
    if not run_ids:
        return
    root = cache_root(db_path)
    with ThreadPoolExecutor(ARTIFACT_THREADS) as pool:
        files, listing_errors = find_result_files(client, run_ids, pool, artifact_uris)
        fetched, failed = download(client, files, root, pool)
    report.errors.extend([*listing_errors, *failed.values()])
    folders = sorted(
        {
            (f.run_id, str((root / f.run_id / f.path).parent))
            for f in files
            if f.run_id not in failed
        }
    )
    inserted = skipped = 0
    for done, (run_id, folder) in enumerate(folders, start=1):
        sub = lm_eval_results.ingest([folder], db_path, run_id=run_id, source_kind="artifact")
        inserted, skipped = inserted + sub.inserted, skipped + sub.skipped
        report.errors.extend(f"run {run_id} artifact {err}" for err in sub.errors)
        progress(done, len(folders), "artifact evals")
    if folders:
        _note(
            report,
            f"lm-eval artifacts: {len(folders)} folders ({fetched} files downloaded), "
            f"{inserted} evals inserted, {skipped} unchanged",
        )
