"""`stratum model show|script|retrain NAME`: a model's versions, its training script, a retraining."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table

from stratum.client import Client, ClientError
from stratum.v1 import models_pb2 as m


def run(args) -> int:
    console = Console()
    try:
        client = Client(args.endpoint, args.token, args.ca_cert, args.data_dir)
        if args.model_command == "script":
            script = client.call("GetTrainingScript", m.GetTrainingScriptRequest(name=args.name, version=args.version))
            out = args.output or script.filename
            if out == "-":
                sys.stdout.write(script.source)
            else:
                with open(out, "w") as f:
                    f.write(script.source)
                Console(stderr=True).print(f"wrote {out}: version {script.version} of model {args.name}; "
                                           f"run it with: python {out} <data file>", highlight=False)
            return 0
        if args.model_command == "retrain":
            model = client.call("RetrainModel", m.RetrainModelRequest(name=args.name, reason="manual (stratum model retrain)"))
            console.print(f"retraining {args.name}: operation {model.operation.id}", highlight=False)
            return 0
        model = client.call("GetModel", m.GetModelRequest(name=args.name))
    except ClientError as e:
        Console(stderr=True).print(f"[red]error:[/red] {e}", highlight=False)
        return 1
    except OSError as e:
        Console(stderr=True).print(f"[red]error:[/red] cannot write {args.output}: {e.strerror}", highlight=False)
        return 1
    v, op = model.serving, model.operation
    console.print(f"model [bold]{args.name}[/bold]: {model.state}; serving {v.version or '-'} ({v.best_algorithm}, "
                  f"score {v.score:.4g}); versions {', '.join(model.versions) or '-'}", highlight=False)
    if op.id:
        console.print(f"operation {op.id}: {op.state} {op.done}/{op.total} {op.message} {op.error}", highlight=False)
    table = Table(title="leaderboard")
    for col in ("algorithm", "params", "score", "std", "error"):
        table.add_column(col)
    for e in v.leaderboard:
        table.add_row(e.algorithm, json.dumps(json.loads(e.params_json)), f"{e.score:.4f}" if e.HasField("score") else "-",
                      f"{e.std:.4f}", e.error)
    console.print(table)
    return 0
