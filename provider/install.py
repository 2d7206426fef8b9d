"""`stratum provider install`: put terraform-provider-stratum where `terraform init` finds it offline.

Terraform's implied local mirror is `~/.terraform.d/plugins` (`~` from $HOME),
laid out as HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/terraform-provider-TYPE_vVERSION.
A provider found there is installed from there without any network access.

What we install is a two-line launcher that execs this virtualenv's Python on
`provider.main`, so the installed provider always runs the code of this
checkout. Terraform records the launcher's hash in each configuration's
`.terraform.lock.hcl`; the launcher only changes when the virtualenv path or
the version does, so reinstalling from the same checkout keeps lock files
valid. After a reinstall that did change it, `terraform init` reports a
checksum mismatch (`init -upgrade` does not help for the same version);
`lock_command()` records the new hash, or delete the lock file and init again.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from pathlib import Path

import stratum

HOST, NAMESPACE, TYPE = "registry.terraform.io", "stratum", "stratum"

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def target_platform() -> str:
    """Terraform's name for this machine, e.g. linux_amd64."""
    system = platform.system().lower()
    machine = platform.machine().lower()
    return f"{system}_{_ARCH.get(machine, machine)}"


def launcher_text(python: str) -> str:
    # -P: do not put the working directory (Terraform's configuration dir) on sys.path,
    # so a folder named `provider` there cannot shadow ours.
    return (
        "#!/bin/sh\n"
        f"# terraform-provider-stratum {stratum.__version__}, installed by `stratum provider install`.\n"
        f"exec {shlex.quote(python)} -P -m provider.main \"$@\"\n"
    )


def install(plugins_dir: Path, python: str = sys.executable, version: str = stratum.__version__) -> Path:
    """Write the launcher; returns its path. Idempotent."""
    target = plugins_dir / HOST / NAMESPACE / TYPE / version / target_platform() / f"terraform-provider-{TYPE}_v{version}"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write aside, then rename: a terraform running meanwhile never sees half a file.
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(launcher_text(python))
    tmp.chmod(0o755)
    os.replace(tmp, target)
    return target


def lock_command(plugins_dir: Path) -> str:
    """What to run in a configuration whose lock file holds an older install's hash."""
    return f"terraform providers lock -fs-mirror={shlex.quote(str(plugins_dir))} -platform={target_platform()} {NAMESPACE}/{TYPE}"


def run(args) -> int:
    from rich.console import Console

    console = Console()
    plugins_dir = Path(args.plugins_dir).expanduser() if getattr(args, "plugins_dir", None) else Path.home() / ".terraform.d" / "plugins"
    try:
        path = install(plugins_dir)
    except OSError as e:
        console.print(f"[red]cannot install terraform-provider-stratum under {plugins_dir}: {e}[/red]")
        return 1
    console.print(f"Installed [bold]terraform-provider-stratum[/bold] {stratum.__version__} at [cyan]{path}[/cyan]", highlight=False, soft_wrap=True)
    console.print('Use it with [bold]source = "stratum/stratum"[/bold]; a plain [bold]terraform init[/bold] finds it offline.', highlight=False)
    console.print(
        "If terraform init then reports that the package doesn't match the checksums in .terraform.lock.hcl "
        f"(an install from another virtualenv), run in that configuration: [bold]{lock_command(plugins_dir)}[/bold]",
        highlight=False,
        soft_wrap=True,
    )
    return 0
