"""``python -m sharpscope`` runs the command-line interface."""

from sharpscope_cli.app import main

if __name__ == "__main__":
    main()
