"""``python -m harness`` (what torchrun launches) is the CLI."""

from harness.cli import main

if __name__ == "__main__":
    main()
