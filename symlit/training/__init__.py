"""Training: the LightningModule, callbacks, LR schedules, ``symlit-train`` and ``symlit-slurm``."""
