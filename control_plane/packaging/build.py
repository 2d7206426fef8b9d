"""Model artifact -> BentoML service -> bento -> one content-addressed archive file.

    build_bento(artifact_dir, name, version, bentoml_home, workdir) -> BentoArtifact

1. A build context is written under `workdir`: `service.py` (service_template.py, verbatim),
   `model/` (every file of the artifact directory) and `bentofile.yaml` with
   `lock_packages: false` and the service's packages pinned to the versions installed here,
   so the build never downloads anything (it needs `uv` on PATH or in this venv, nothing else).
2. `bentoml build` runs as a subprocess with BENTOML_HOME=bentoml_home; the bento's directory is
   then archived as `bentoml export` would (a tar of the directory's contents).
3. The archive is rewritten canonically (see `canonicalize`): BentoML stamps a
   `creation_time` into bento.yaml and shutil.make_archive records file mtimes in walk order,
   so two builds of the same inputs would otherwise never share a digest.  After the rewrite
   the same artifact, name, version, BentoML and package versions give the same sha256, and
   `bentoml import` reads the result like any `.bento` (an xz tar).

The bento stays in `bentoml_home` (profile.py serves it from there); the archive is what the
ArtifactStore keeps and the nodes fetch.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from stratum import bentos
from stratum.digests import file_sha256

TEMPLATE = Path(__file__).with_name("service_template.py")
SERVICE_CLASS = "StratumModel"
# What service_template.py imports at run time (besides bentoml, which `bentoml build` pins itself).
SERVICE_PACKAGES = ("scikit-learn", "pandas", "joblib", "numpy")
REQUIRED_FILES = ("model.joblib", "metadata.json")
# Fixed creation time written into every canonical bento.yaml (overridable: SOURCE_DATE_EPOCH).
DEFAULT_EPOCH = 0
_TAG_PART = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62})$")
BUILD_TIMEOUT_S = 300


class BuildError(RuntimeError):
    """`bentoml build` failed, or the artifact directory is not a model artifact."""


@dataclass(frozen=True)
class BentoArtifact:
    path: str  # absolute path of the canonical .bento archive (xz tar)
    sha256: str  # hex digest of that archive: the key in the ArtifactStore and on the nodes
    size_bytes: int
    tag: str  # "name:version" inside the bento (what `bentoml serve` takes after import)
    artifact_sha256: str  # digest of the model artifact directory (files, names and bytes)

    def to_dict(self) -> dict:
        return asdict(self)


def tag_part(text: str) -> str:
    """Turn any model/service name or version into a valid bento tag part (lowercase, [a-z0-9._-], <= 63)."""
    s = re.sub(r"[^a-z0-9._-]+", "-", text.strip().lower()).strip("-._")
    s = s[:63].rstrip("-._")
    if not s:
        raise ValueError(f"cannot make a bento name or version out of {text!r}")
    return s


def _check_tag_part(value: str, what: str) -> None:
    if not _TAG_PART.match(value):
        raise ValueError(f"bento {what} {value!r} is invalid: use 1-63 characters of [a-z0-9._-], "
                         "starting with a letter or digit (tag_part() converts any string)")


def artifact_digest(artifact_dir: str | os.PathLike) -> str:
    """sha256 over the artifact directory: every regular file's relative path and bytes, sorted."""
    root = Path(artifact_dir)
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not _ignored(p.relative_to(root))):
        rel = path.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0")
        h.update(str(path.stat().st_size).encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _ignored(rel: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in rel.parts)


def _pinned_packages() -> list[str]:
    pins = []
    for pkg in SERVICE_PACKAGES:
        try:
            pins.append(f"{pkg}=={importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(pkg)
    return pins


def bentoml_env(bentoml_home: str | os.PathLike, extra: dict | None = None) -> dict:
    """Environment for a bentoml subprocess: its own BENTOML_HOME, no telemetry, this venv first on PATH
    (so `bentoml` finds `uv`, installed next to it)."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["BENTOML_HOME"] = str(Path(bentoml_home).resolve())
    env["BENTOML_DO_NOT_TRACK"] = "True"
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def bentoml_cli() -> list[str]:
    """argv prefix that runs this interpreter's bentoml CLI."""
    exe = Path(sys.executable).with_name("bentoml")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bentoml"]


def run_bentoml(args: list[str], bentoml_home: str | os.PathLike, *, cwd: str | os.PathLike | None = None,
                timeout: float = BUILD_TIMEOUT_S, what: str | None = None) -> str:
    proc = subprocess.run([*bentoml_cli(), *args], cwd=cwd, env=bentoml_env(bentoml_home), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BuildError(f"{what or 'bentoml ' + args[0]} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def write_build_context(artifact_dir: str | os.PathLike, ctx: str | os.PathLike, name: str, labels: dict) -> Path:
    """service.py + model/ + bentofile.yaml under `ctx` (emptied first)."""
    src, ctx = Path(artifact_dir), Path(ctx)
    missing = [f for f in REQUIRED_FILES if not (src / f).is_file()]
    if missing:
        raise BuildError(f"{src} is not a model artifact: missing {', '.join(missing)}")
    try:
        json.loads((src / "metadata.json").read_text())
    except ValueError as exc:
        raise BuildError(f"{src / 'metadata.json'} is not valid JSON: {exc}") from None
    if ctx.exists():
        shutil.rmtree(ctx)
    (ctx / "model").mkdir(parents=True)
    shutil.copyfile(TEMPLATE, ctx / "service.py")
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if _ignored(rel) or not path.is_file():
            continue
        (ctx / "model" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, ctx / "model" / rel)
    bentofile = {
        "service": f"service:{SERVICE_CLASS}",
        "name": name,
        "labels": labels,
        "include": ["service.py", "model/**"],
        "exclude": ["__pycache__/", "*.pyc"],
        "python": {"lock_packages": False, "packages": _pinned_packages()},
    }
    # YAML is a superset of JSON: no YAML writer needed, and the output is byte-stable.
    (ctx / "bentofile.yaml").write_text(json.dumps(bentofile, indent=2, sort_keys=True) + "\n")
    return ctx


def _creation_time(epoch: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).isoformat()


def canonicalize(src: str | os.PathLike, dst: str | os.PathLike, epoch: int = DEFAULT_EPOCH) -> None:
    """Rewrite a bento archive (a tar, compressed or not) so its bytes depend only on its content:
    entries sorted by name, mtime=`epoch`, owner root:root (0/0, no names), modes 0755/0644,
    bento.yaml's creation_time set to `epoch`.  xz at a fixed preset is deterministic."""
    stamp = _creation_time(epoch)
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    with tarfile.open(src, "r:*") as tin:
        members = sorted(tin.getmembers(), key=lambda m: m.name.lstrip("./") if m.name not in (".", "./") else "")
        with lzma.open(tmp, "wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=6) as xz, \
                tarfile.open(fileobj=xz, mode="w", format=tarfile.GNU_FORMAT) as tout:
            for m in members:
                info = tarfile.TarInfo(m.name)
                info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "", ""
                if m.isdir():
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tout.addfile(info)
                elif m.issym():
                    info.type, info.linkname, info.mode = tarfile.SYMTYPE, m.linkname, 0o777
                    tout.addfile(info)
                elif m.isfile():
                    info.mode = 0o755 if m.mode & 0o111 else 0o644
                    f = tin.extractfile(m)
                    assert f is not None
                    if m.name.lstrip("./") == "bento.yaml":
                        text = f.read().decode()
                        text = re.sub(r"(?m)^creation_time:.*$", f"creation_time: '{stamp}'", text, count=1)
                        data = text.encode()
                        info.size = len(data)
                        tout.addfile(info, io.BytesIO(data))
                    else:
                        info.size = m.size
                        tout.addfile(info, f)
                # hard links, devices: a bento has none; dropped
    os.replace(tmp, dst)



def bento_dir(bentoml_home: str | os.PathLike, tag: str) -> Path:
    name, _, version = tag.partition(":")
    return Path(bentoml_home) / "bentos" / name / version


def build_bento(artifact_dir: str | os.PathLike, name: str, version: str, bentoml_home: str | os.PathLike,
                workdir: str | os.PathLike, *, labels: dict | None = None, epoch: int | None = None) -> BentoArtifact:
    """Package one model version: returns the canonical archive (in `workdir`) and its digest.

    Rebuilding an existing tag in `bentoml_home` replaces it.  `epoch` (default: SOURCE_DATE_EPOCH or 0)
    is the creation time recorded in the bento."""
    _check_tag_part(name, "name")
    _check_tag_part(version, "version")
    artifact_dir = Path(artifact_dir).resolve()
    workdir = Path(workdir).resolve()
    bentoml_home = Path(bentoml_home).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    bentoml_home.mkdir(parents=True, exist_ok=True)
    if epoch is None:
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
    tag = f"{name}:{version}"
    art_digest = artifact_digest(artifact_dir)
    metadata = json.loads((artifact_dir / "metadata.json").read_text()) if (artifact_dir / "metadata.json").is_file() else {}
    all_labels = {"stratum.artifact-sha256": art_digest, **({"stratum.task": str(metadata["task"])} if "task" in metadata else {}),
                  **(labels or {})}

    ctx = write_build_context(artifact_dir, workdir / f"ctx-{name}-{version}", name, all_labels)
    if bento_dir(bentoml_home, tag).exists():
        run_bentoml(["delete", "-y", tag], bentoml_home, what=f"removing the previous bento {tag}")
    run_bentoml(["build", "-f", str(ctx / "bentofile.yaml"), "--name", name, "--version", version, "-o", "tag", str(ctx)],
                bentoml_home, cwd=ctx, what=f"bentoml build of {tag}")
    out = workdir / f"{name}-{version}.bento"
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".export-") as tmp:
        # What `bentoml export` archives: the bento's directory as "./...", with a models/ directory
        # for the models of BentoML's model store it uses (ours has none: the model is in src/),
        # without a second bentoml process (~1 CPU-s) and an xz pass that canonicalize undoes.
        # Same bytes, same digest as before (checked against `bentoml export` when this was written).
        raw = Path(tmp) / "raw.tar"
        built = bento_dir(bentoml_home, tag)
        with tarfile.open(raw, "w", format=tarfile.GNU_FORMAT) as tar:
            tar.add(built, arcname=".")
            if not (built / "models").exists():
                models = tarfile.TarInfo("./models")
                models.type = tarfile.DIRTYPE
                tar.addfile(models)
        canonicalize(raw, out, epoch)
    shutil.rmtree(ctx, ignore_errors=True)
    return BentoArtifact(path=str(out), sha256=file_sha256(out), size_bytes=out.stat().st_size, tag=tag,
                         artifact_sha256=art_digest)


def read_bento_info(archive: str | os.PathLike) -> dict:
    """name, version, tag and bentoml_version from an archive's bento.yaml, without importing it."""
    try:
        return bentos.read_bento_info(archive)
    except ValueError as e:
        raise BuildError(str(e)) from None
