"""``python -m zoo``: the `zoo` command, for launchers that start a module, such as
``torchrun --nproc-per-node 2 -m zoo train RECIPE``."""

from zoo.cli import main

if __name__ == "__main__":
    main(prog_name="zoo")
