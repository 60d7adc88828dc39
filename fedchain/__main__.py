"""``python -m fedchain``: the ``fedchain`` command."""

from fedchain.services.cli.main import main

if __name__ == "__main__":
    main()
