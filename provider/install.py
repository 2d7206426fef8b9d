"""`stratum provider install`: put terraform-provider-stratum where `terraform init` finds it offline.

Terraform's implied local mirror is `~/.terraform.d/plugins` (`~` from $HOME),
laid out as HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/terraform-provider-TYPE_vVERSION.
A provider found there is installed from there without any network access.

What we install is a two-line launcher that execs this virtualenv's Python on
`provider.main`, so the installed provider always runs the code of this
checkout. Terraform records the launcher's hash in each configuration's
`.terraform.lock.hcl`; the launcher only changes when the virtualenv path or
the version does. After such a reinstall, `terraform init -upgrade` (or
deleting the lock file) records the new hash.
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


def run(args) -> int:
    from rich.console import Console

    console = Console()
    plugins_dir = Path(args.plugins_dir).expanduser() if getattr(args, "plugins_dir", None) else Path.home() / ".terraform.d" / "plugins"
    try:
        path = install(plugins_dir)
    except OSError as e:
        console.print(f"[red]cannot install terraform-provider-stratum under {plugins_dir}: {e}[/red]")
        return 1
    console.print(f"Installed [bold]terraform-provider-stratum[/bold] {stratum.__version__} at [cyan]{path}[/cyan]", highlight=False)
    console.print(
        'Use it with [bold]source = "stratum/stratum"[/bold]; a plain [bold]terraform init[/bold] finds it offline. '
        "If a configuration's .terraform.lock.hcl predates this install, run [bold]terraform init -upgrade[/bold].",
        highlight=False,
    )
    return 0
