"""The stand-in ComfyUI of the embedded reference stack."""

from pathlib import Path

DATA = Path(__file__).with_name("data")  # the recorded definitions and answers the stand-in serves
