"""One factor at a time around the headline (didactic, 51/49, VPL): beta, latent size,
context size (training and evaluation together) and number of groups.

Command (SLURM):  python launch/slurm.py --sweep=ablations --workdir=runs/ablations
In-process:       notebooks/02_ablations.py runs these on the tiny config.
Runtime:          each job about 10 s on the 2-core CPU at full size.
"""

CONFIG = "experiments/configs/default.py"
FIXED = {"methods": ("vpl",)}
RUNS = [
    {},
    {"loss.beta": 0.1},
    {"loss.beta": 10.0},
    {"model.latent_dim": 1},
    {"model.latent_dim": 16},
    {"train.num_context": 2, "eval.num_context": 2},
    {"train.num_context": 16, "eval.num_context": 16},
    {"data.kwargs.shares": (0.34, 0.33, 0.33)},
    {"data.kwargs.shares": (0.25, 0.25, 0.25, 0.25)},
]
