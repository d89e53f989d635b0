"""``python -m zoo``: the `zoo` command, for launchers that start a module, such as
``torchrun --nproc-per-node 2 -m zoo train RECIPE``."""

if __name__ == "__main__":
    try:  # Ctrl-C while torch loads, as launched processes may get it, ends quietly
        from zoo.cli import main
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    main(prog_name="zoo")
