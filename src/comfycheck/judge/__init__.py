"""Judging: Measurements, the recorder, the foundations and the checks that stand on them."""
