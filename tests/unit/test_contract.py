"""The contract: committed stubs match the protos, and every RPC and field is commented."""

from __future__ import annotations

import filecmp
import glob
import os
import re

from grpc_tools import protoc

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTOS = sorted(glob.glob(os.path.join(REPO, "proto", "stratum", "v1", "*.proto")))


def test_committed_stubs_are_generated_from_the_protos(tmp_path):
    import grpc_tools
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["protoc", f"-I{os.path.join(REPO, 'proto')}", f"-I{include}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}", *PROTOS]
    assert protoc.main(args) == 0
    generated = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "stratum" / "v1" / "*.py*")))
    assert generated, "protoc generated nothing"
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "stratum" / "v1", os.path.join(REPO, "stratum", "v1"), generated, shallow=False)
    assert (mismatch, errors) == ([], []), "stubs are stale: run scripts/gen-protos"


def test_every_rpc_and_field_is_commented():
    uncommented = []
    for path in PROTOS:
        lines = open(path).read().splitlines()
        for i, line in enumerate(lines):
            s = line.strip()
            is_rpc = s.startswith("rpc ")
            is_field = re.match(r"^(repeated |optional |map<[^>]+> )?[\w.]+ \w+ = \d+;", s) is not None
            if (is_rpc or is_field) and not lines[i - 1].strip().startswith("//"):
                uncommented.append(f"{os.path.basename(path)}:{i + 1}: {s}")
    assert uncommented == []
