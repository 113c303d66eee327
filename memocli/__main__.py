"""``python -m memocli`` (also what ``torchrun -m memocli`` runs)."""

from .cli import cli

if __name__ == "__main__":
    cli()
