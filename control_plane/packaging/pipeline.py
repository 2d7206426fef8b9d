"""Package one model version end to end: build, store by digest, profile, record.

    packaged = package_model_version(artifact_dir, name="congestion", version="v3", data_dir=cp_data_dir)
    packaged.digest, packaged.size_bytes, packaged.load_time_s, packaged.rss_bytes, packaged.tag

Uses `<data_dir>/bentoml` as the build BENTOML_HOME and `<data_dir>/packaging` as scratch; the
archive ends up only in the ArtifactStore (`<data_dir>/artifacts/sha256/...`), with the profile
numbers in its metadata sidecar.  Blocking (seconds): run it in an operation, not on a gRPC thread.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from control_plane.packaging.build import BentoArtifact, build_bento
from control_plane.packaging.profile import BentoProfile, profile_artifact
from control_plane.packaging.store import ArtifactStore


@dataclass(frozen=True)
class PackagedVersion:
    digest: str  # sha256 of the canonical .bento archive (the ArtifactStore key)
    tag: str
    size_bytes: int
    artifact_sha256: str
    load_time_s: float | None
    rss_bytes: int | None
    p95_ms: float | None = None  # of POST /predict, one request at a time, measured right after start
    capacity_rps: float | None = None  # requests/s one replica sustains (concurrent clients)
    ms_per_kib: float | None = None  # extra service time per KiB of request body
    sizes: list | None = None  # replica sizes measured (profile.py): capacity and p95 per cpu quota and workers

    def to_dict(self) -> dict:
        return asdict(self)


def package_model_version(artifact_dir: str | os.PathLike, name: str, version: str, data_dir: str | os.PathLike, *,
                          store: ArtifactStore | None = None, profile: bool = True, workers: int = 1) -> PackagedVersion:
    data_dir = Path(data_dir).resolve()
    store = store or ArtifactStore(data_dir)
    home, work = data_dir / "bentoml", data_dir / "packaging"
    art: BentoArtifact = build_bento(artifact_dir, name, version, home, work)
    digest = store.put(art.path)
    assert digest == art.sha256, "archive changed while it was stored"
    os.unlink(art.path)
    # STRATUM_PROFILE_SIZES=0 (tests only) skips the replica sizes: about 4 s a version
    sizes = os.environ.get("STRATUM_PROFILE_SIZES", "1") != "0"
    prof: BentoProfile | None = (profile_artifact(artifact_dir, art.tag, home, work / "profile", workers=workers,
                                                  sizes=sizes) if profile else None)
    meta = {"tag": art.tag, "size_bytes": art.size_bytes, "artifact_sha256": art.artifact_sha256,
            **({"profile": prof.to_dict()} if prof else {})}
    store.put_metadata(digest, meta)
    return PackagedVersion(digest=digest, tag=art.tag, size_bytes=art.size_bytes, artifact_sha256=art.artifact_sha256,
                           load_time_s=prof.load_time_s if prof else None, rss_bytes=prof.rss_bytes if prof else None,
                           p95_ms=prof.p95_ms if prof else None, capacity_rps=prof.capacity_rps if prof else None,
                           ms_per_kib=prof.ms_per_kib if prof else None, sizes=prof.sizes if prof else None)
