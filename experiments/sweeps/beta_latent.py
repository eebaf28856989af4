"""beta x latent size for VPL on the headline task (didactic, 51/49): 4 jobs.

Command (SLURM):  python launch/slurm.py --sweep=beta_latent --workdir=runs/beta_latent
Locally, one job: python -m experiments.main --workdir=runs/beta_latent/beta0.1-latent_dim2 \
                    --config.methods="('vpl',)" --config.loss.beta=0.1 --config.model.latent_dim=2
Runtime:  each job about 10 s on the 2-core CPU (VPL only, 3000 steps).
Read:     notebooks/02_ablations.py with VPL_SWEEP_DIR=runs/beta_latent.
"""

CONFIG = "experiments/configs/default.py"
FIXED = {"methods": ("vpl",)}
GRID = {"loss.beta": (0.1, 1.0), "model.latent_dim": (2, 8)}
