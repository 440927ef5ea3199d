"""One thin Hydra app per stage; each composes its config and calls ``run_<stage>``."""
