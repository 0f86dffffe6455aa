"""Built-in launchers for ``harness bench``: local processes, Ray tasks, Slurm jobs (submitit)."""
