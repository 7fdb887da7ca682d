"""Weights & Biases for a run (``--track``): the run's TensorBoard logs, streamed by W&B's TensorBoard sync.

Only used when wandb is installed (BaseConfig.validate says so in one line otherwise). The W&B run id is kept
in the run directory (``wandb_id``), so a resumed pgrad run continues the same W&B run.
"""

from __future__ import annotations

import os
from typing import Any


def start_wandb(run: Any) -> Any:
    """wandb.init for a pgrad Run: project $WANDB_PROJECT (default 'pgrad'), named after the run directory."""
    import wandb

    id_file = run.dir / "wandb_id"
    run_id = id_file.read_text().strip() if id_file.exists() else wandb.util.generate_id()
    id_file.write_text(run_id)
    return wandb.init(project=os.environ.get("WANDB_PROJECT", "pgrad"), name=run.dir.name, id=run_id,
                      resume="allow", dir=str(run.dir), config={"algo": run.algo, **run.cfg.to_dict()},
                      sync_tensorboard=True)
