"""Many runs at once: the study's Table 1 grid and the hyper-parameter search."""
