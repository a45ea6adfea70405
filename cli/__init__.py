"""The ``sharpscope`` command-line interface (installed as the ``sharpscope_cli`` package).

Commands are thin layers over keyword-only functions of the :mod:`sharpscope` library.
"""
