"""`stratum provider install` (provider/install.py)."""

import os
import subprocess
import sys
from pathlib import Path

import stratum
from provider.install import target_platform

STRATUM = Path(sys.executable).with_name("stratum")
V = stratum.__version__


def launcher(root: Path) -> Path:
    return root / "registry.terraform.io/stratum/stratum" / V / target_platform() / f"terraform-provider-stratum_v{V}"


def test_install_into_home_implied_mirror(tmp_path):
    home = tmp_path / "home"
    p = subprocess.run([str(STRATUM), "provider", "install"], env={**os.environ, "HOME": str(home)}, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    path = launcher(home / ".terraform.d" / "plugins")
    assert path.is_file() and os.access(path, os.X_OK)
    assert "terraform-provider-stratum" in p.stdout and str(path.parent) in p.stdout.replace("\n", "")
    text = path.read_text()
    assert text.startswith("#!/bin/sh\n") and sys.executable in text and "-m provider.main" in text


def test_plugins_dir_is_honoured_and_reinstall_is_stable(tmp_path):
    for _ in range(2):
        p = subprocess.run([str(STRATUM), "provider", "install", "--plugins-dir", str(tmp_path / "plugins")], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    path = launcher(tmp_path / "plugins")
    first = path.read_bytes()
    assert [x.name for x in path.parent.iterdir()] == [path.name]  # no temp file left behind
    subprocess.run([str(STRATUM), "provider", "install", "--plugins-dir", str(tmp_path / "plugins")], check=True, capture_output=True)
    assert path.read_bytes() == first  # same launcher => same hash in .terraform.lock.hcl


def test_unwritable_plugins_dir_is_a_clean_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    p = subprocess.run([str(STRATUM), "provider", "install", "--plugins-dir", str(blocker)], capture_output=True, text=True)
    assert p.returncode == 1 and "cannot install" in p.stdout and "Traceback" not in p.stdout + p.stderr


def test_launcher_starts_the_provider_handshake(tmp_path):
    # Terraform reads one handshake line from the plugin's stdout: core|proto|net|addr|grpc|cert.
    subprocess.run([str(STRATUM), "provider", "install", "--plugins-dir", str(tmp_path)], check=True, capture_output=True)
    env = {**os.environ, "HOME": str(tmp_path), "TF_PLUGIN_MAGIC_COOKIE": "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"}
    proc = subprocess.Popen([str(launcher(tmp_path))], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        line = proc.stdout.readline()
    finally:
        proc.kill()
        proc.wait()
    fields = line.strip().split("|")
    assert fields[:3] == ["1", "6", "unix"] and fields[4] == "grpc", line


def test_run_by_hand_it_explains_itself(tmp_path):
    subprocess.run([str(STRATUM), "provider", "install", "--plugins-dir", str(tmp_path)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "TF_PLUGIN_MAGIC_COOKIE"}
    p = subprocess.run([str(launcher(tmp_path))], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 1 and "Terraform plugin" in p.stderr and "stratum provider install" in p.stderr
