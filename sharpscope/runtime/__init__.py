"""The ground floor of sharpscope: plumbing every layer above uses, and nothing of them.

=================  ==================================================================
module             what it holds
=================  ==================================================================
``files``          atomic writes, strict JSON, folder locks, ``check_writable``,
                   ``safe_torch_load``
``cache``          reading caches that may be damaged (a damaged cache is a miss)
``device``         ``resolve_device``, ``seed_everything``
``ranges``         ``parse_range`` (``START:STOP:NUM``)
``progress``       progress bars (silent off rank 0)
``distributed``    torchrun process groups, ranks, sharding
``functional``     parameter selection, probe modes, flat vectors, ``preserved``
``sanitize``       ``printable``: text from a file made safe for a terminal
``threads``        CPU-thread choice from affinity, cgroup quota and ``OMP_NUM_THREADS``
``figstyle``       figure style, sizes and saving (+ ``colorscale``, ``figticks``,
                   ``figlabels``)
=================  ==================================================================

Runtime imports nothing of sharpscope but :mod:`sharpscope.errors` and
:mod:`sharpscope._version`. This package imports none of its modules: import the one
you need (``from sharpscope.runtime.files import atomic_write_json``).
"""
