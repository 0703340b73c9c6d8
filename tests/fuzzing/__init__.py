"""Fuzzing progressor's input edges: cases (realistic inputs and their mutants), the oracle
that judges what the readers made of them, and one run of both (shared by tests/test_fuzz.py
and bench/fuzz.py, so that the suite and `make fuzz` judge alike)."""
