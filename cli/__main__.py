"""``python -m sharpscope_cli``: the same as the ``sharpscope`` console script."""

from .app import main

if __name__ == "__main__":
    main()
