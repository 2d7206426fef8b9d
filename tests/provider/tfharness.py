"""Driving real terraform against terraform-provider-stratum, acceptance-test style.

Each test gets a working directory of its own (fresh `terraform init`, so a
reinstalled provider never meets a stale .terraform.lock.hcl) under a HOME
where `stratum provider install` put the provider, and a CLI config file of
its own so the developer's ~/.terraformrc plays no part.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[2]
STRATUM_CLI = Path(sys.executable).with_name("stratum")

PROVIDER_BLOCK = """
terraform {
  required_providers {
    stratum = { source = "stratum/stratum" }
  }
}
"""


def terraform_available() -> bool:
    return shutil.which("terraform") is not None


def install_provider(home: Path) -> subprocess.CompletedProcess:
    """`stratum provider install` as a user runs it, with HOME pointing at `home`."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run([str(STRATUM_CLI), "provider", "install"], env=env, capture_output=True, text=True, timeout=120)


class TerraformError(AssertionError):
    pass


@dataclass
class Result:
    args: list[str]
    rc: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Workspace:
    def __init__(self, root: Path, home: Path, env: Optional[dict[str, str]] = None):
        self.dir = root
        self.dir.mkdir(parents=True, exist_ok=True)
        rc = root / "terraformrc"
        rc.write_text("disable_checkpoint = true\n")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("STRATUM_", "TF_"))}
        self.env = {
            **base,
            "HOME": str(home),
            "TF_CLI_CONFIG_FILE": str(rc),
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            **(env or {}),
        }
        self.initialized = False

    def write(self, config: str) -> None:
        (self.dir / "main.tf").write_text(PROVIDER_BLOCK + config)

    def tf(self, *args: str, check: bool = True, ok_codes: tuple[int, ...] = (0,), timeout: int = 300) -> Result:
        if not self.initialized and args[0] != "init":
            self.init()  # lazily, once main.tf exists: init installs what the configuration requires
        cmd = ["terraform", *args]
        p = subprocess.run(cmd, cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=timeout)
        res = Result(list(args), p.returncode, p.stdout, p.stderr)
        if check and p.returncode not in ok_codes:
            raise TerraformError(f"terraform {' '.join(args)} exited {p.returncode}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}")
        return res

    def init(self) -> Result:
        self.initialized = True
        return self.tf("init", "-no-color", "-input=false")

    def plan(self, check: bool = True) -> Result:
        """`plan -detailed-exitcode`: rc 0 no changes, 2 changes, 1 error."""
        return self.tf("plan", "-no-color", "-input=false", "-detailed-exitcode", check=check, ok_codes=(0, 2))

    def apply(self, check: bool = True) -> Result:
        return self.tf("apply", "-no-color", "-input=false", "-auto-approve", check=check)

    def destroy(self, check: bool = True) -> Result:
        return self.tf("destroy", "-no-color", "-input=false", "-auto-approve", check=check)

    def import_(self, address: str, id: str, check: bool = True) -> Result:
        return self.tf("import", "-no-color", "-input=false", address, id, check=check)

    def state_rm(self, address: str) -> Result:
        return self.tf("state", "rm", "-no-color", address)

    def show(self) -> dict:
        return json.loads(self.tf("show", "-json", "-no-color").stdout)

    def resources(self) -> dict[str, dict]:
        """address -> attribute values (sensitive ones included) from `terraform show -json`."""
        state = self.show()
        out: dict[str, dict] = {}
        for r in state.get("values", {}).get("root_module", {}).get("resources", []):
            out[r["address"]] = r["values"]
        return out

    def outputs(self) -> dict:
        return {k: v["value"] for k, v in json.loads(self.tf("output", "-json", "-no-color").stdout).items()}


@dataclass
class Step:
    """One step of an acceptance test, in the manner of terraform-plugin-testing.

    config:       HCL after the terraform/required_providers block
    check:        called with the Workspace after a successful apply
    expect_error: substrings that must all be in the output of a failing plan/apply
    plan_only:    only plan (e.g. to check a plan-time error)
    """

    config: str
    check: Optional[Callable[[Workspace], None]] = None
    expect_error: list[str] = field(default_factory=list)
    plan_only: bool = False
    import_address: Optional[str] = None  # after apply: state rm + import this address...
    import_id: Optional[str] = None  # ...with this id, then a plan must be empty


def run_steps(ws: Workspace, steps: list[Step]) -> None:
    """Apply each step; after each successful apply a second plan must show no changes."""
    for i, step in enumerate(steps):
        ws.write(step.config)
        where = f"step {i + 1}"
        if step.expect_error:
            res = ws.plan(check=False) if step.plan_only else ws.apply(check=False)
            assert res.rc == 1, f"{where}: expected an error, got rc {res.rc}\n{res.output}"
            for text in step.expect_error:
                assert text in res.output, f"{where}: {text!r} not in output:\n{res.output}"
            assert "Traceback" not in res.output, f"{where}: traceback in output:\n{res.output}"
            continue
        if step.plan_only:
            ws.plan()
            continue
        ws.apply()
        if step.check:
            step.check(ws)
        res = ws.plan()
        assert res.rc == 0, f"{where}: plan after apply is not empty:\n{res.output}"
        if step.import_address:
            before = ws.resources()[step.import_address]
            ws.state_rm(step.import_address)
            ws.import_(step.import_address, step.import_id)
            after = ws.resources()[step.import_address]
            assert after == before, f"{where}: imported state differs:\n{before}\n{after}"
            res = ws.plan()
            assert res.rc == 0, f"{where}: plan after import is not empty:\n{res.output}"
