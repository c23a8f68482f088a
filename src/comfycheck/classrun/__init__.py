"""A class run: many students on the one GPU at once (loadtests/classroom.py drives it)."""
