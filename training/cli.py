"""The entry point that installs made before the commands moved to training/commands/ still
name (their .venv/bin/unmask says training.cli:main); setup.cfg names training.commands:main,
and a reinstall drops this file's use."""
from training.commands import main  # noqa: F401

if __name__ == "__main__":  # `python -m training.cli` as before the move
    import sys

    sys.exit(main())
