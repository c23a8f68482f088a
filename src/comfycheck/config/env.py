"""The environment variables that move comfycheck's folders, apart from paths.py, which reads them once on import:
the `comfycheck` command sets them from its options before anything imports paths."""
OUT_ENV = "COMFYCHECK_OUT"  # where results go: the `--out` of the comfycheck command, handed to what it starts
STATE_ENV = "COMFYCHECK_STATE"  # the embedded stack's state (its CA, its processes), the suite's own bookkeeping
