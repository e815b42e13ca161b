"""Child-process entry of the harness tests: `python fit_standin.py CONFIG OUT fresh|resume [key=value ...]`.

A script file (not `python -c`), so that Lightning's DDP launcher can start the other ranks with the
same command line.
"""

import os
import sys

import torch

torch.set_num_threads(1)

from gflowout.config import load_config  # noqa: E402
from gflowout.train import fit  # noqa: E402

config = load_config(sys.argv[1], sys.argv[4:])
fit(config, sys.argv[2], resume=sys.argv[3] == "resume")

# Skip the interpreter's ~2-4 s teardown after importing Lightning (C-level destructors): tests wait for it.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
