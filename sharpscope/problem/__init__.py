"""The problem being probed: a model, its loss, its data and the checkpoint they came from.

=================  ==================================================================
module             what it holds
=================  ==================================================================
``problem``        :class:`Problem`, :func:`load_problem`, :func:`check_comparable`
``checkpoint``     the checkpoint format: save, load safely, rebuild the model
``losses``         loss functions by name
``models``         the model zoo (registry, :class:`ModelSpec`, :func:`build_model`)
``data``           data sources by spec string (registry, :class:`DataSpec`,
                   :class:`DataSplits`, :func:`load_data`)
=================  ==================================================================

Every probe command starts with :func:`load_problem`: it reads a checkpoint safely,
rebuilds the network, reloads the very data (and normalisation) it was trained on, and
returns a :class:`Problem`.
"""

from __future__ import annotations

from .problem import Problem, check_comparable, load_problem

__all__ = ["Problem", "load_problem", "check_comparable"]
