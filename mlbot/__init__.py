"""The composition root: the `mlbot` command, and the only package that imports both the
core (`bot/`) and the adapters (`adapters/`).

It wires them together: settings, the store, the core with its handlers, the platforms
and the nudge scheduler. Its modules import the rest of mlbot inside the functions that
run a command, so `mlbot --help` costs little more than argparse.
"""
