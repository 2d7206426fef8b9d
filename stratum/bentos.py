"""Reading a bento archive's identity without importing it (control plane and node alike)."""

from __future__ import annotations

import os
import re
import tarfile


def read_bento_info(archive: str | os.PathLike) -> dict:
    """name, version, tag (and bentoml_version when present) from the archive's bento.yaml; ValueError if absent."""
    with tarfile.open(archive, "r:*") as tar:
        for m in tar:
            if m.isfile() and m.name.lstrip("./") == "bento.yaml":
                f = tar.extractfile(m)
                assert f is not None
                text = f.read().decode()
                break
        else:
            raise ValueError(f"{archive} is not a bento archive: it has no bento.yaml")
    info = {}
    for key in ("name", "version", "bentoml_version"):
        m = re.search(rf"(?m)^{key}:\s*['\"]?([^'\"\n]+?)['\"]?\s*$", text)
        if m:
            info[key] = m.group(1)
    if "name" not in info or "version" not in info:
        raise ValueError(f"{archive}: bento.yaml has no name/version")
    info["tag"] = f"{info['name']}:{info['version']}"
    return info
