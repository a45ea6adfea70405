"""Training trajectories: a run's checkpoints and their PCA plane (Li et al. 2018, section 7)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, SharpscopeError
from ..problem.checkpoint import load_checkpoint
from .normalize import IGNORES, Params, _check_choice
from .vectors import Directions

__all__ = ["Trajectory", "load_trajectory", "pca_directions"]


@dataclass
class Trajectory:
    """The checkpoints of a training run: epochs, their parameters and the final point."""

    epochs: list[int]
    params: list[Params]
    final: Params
    final_path: Path
    paths: list[Path]


_EPOCH_RX = re.compile(r"^epoch_(\d+)\.pt$")


def _missing_epochs(found: list[int], extra: Any) -> list[int]:
    """Epoch files a run should hold but does not.

    From the run's own record (``final.pt``: ``epochs`` and ``save_every``) when it has
    one; otherwise the gaps in the regular spacing of the epochs found.
    """
    have = set(found)
    train = extra.get("train") if isinstance(extra, dict) else None
    epochs = train.get("epochs") if isinstance(train, dict) else None
    every = train.get("save_every") if isinstance(train, dict) else None
    if (
        isinstance(epochs, int)
        and isinstance(every, int)
        and not isinstance(epochs, bool)
        and not isinstance(every, bool)
        and 0 <= epochs <= 10**6
        and every >= 0
    ):
        expected = [0] + (list(range(every, epochs + 1, every)) if every else [])
        return [e for e in expected if e not in have]
    positive = [e for e in found if e > 0]
    if len(positive) < 2:
        return []
    step = math.gcd(*positive)
    return [e for e in range(positive[0], positive[-1] + 1, step) if e not in have]


def load_trajectory(run_dir: str | Path, *, names: Sequence[str] | None = None) -> Trajectory:
    """Read ``epoch_XXX.pt`` and ``final.pt`` of a run folder written by ``sharpscope train``.

    ``names`` are the trainable parameters to read (the caller's model's, e.g.
    ``problem.model``, which may be a user model named with ``--model``). Without them
    ``final.pt``'s model is rebuilt to learn them, which a run trained with a model named
    by import path refuses (sharpscope never imports a name read from a file).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SharpscopeError(f"no such run folder: {run_dir}")
    found = sorted(
        (int(m.group(1)), p) for p in run_dir.iterdir() if (m := _EPOCH_RX.match(p.name))
    )
    final_path = run_dir / "final.pt"
    if not final_path.is_file():
        raise SharpscopeError(
            f"{run_dir} has no final.pt: is it a folder written by sharpscope train?"
        )
    if len(found) < 2:
        raise SharpscopeError(
            f"{run_dir} has {len(found)} epoch_XXX.pt checkpoint(s); a trajectory needs at least 2"
        )
    final_ck = load_checkpoint(final_path)
    missing = _missing_epochs([e for e, _ in found], final_ck.extra)
    if missing:
        shown = ", ".join(f"epoch_{e:03d}.pt" for e in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise CheckpointError(
            f"{run_dir} lacks {shown}{more}: the trajectory would skip "
            f"{'that epoch' if len(missing) == 1 else 'those epochs'}; restore the file(s) "
            "or train the run again"
        )
    if names is None:
        names = [n for n, p in final_ck.build_model().named_parameters() if p.requires_grad]
    names = list(names)
    for n in names:
        t = final_ck.state_dict.get(n)
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise CheckpointError(f"{final_path} has no parameter {n!r} of the model")
    final = {n: final_ck.state_dict[n].float() for n in names}
    params = []
    for _, p in found:
        ck = load_checkpoint(p)
        for n in names:
            if n not in ck.state_dict or ck.state_dict[n].shape != final[n].shape:
                got = list(ck.state_dict[n].shape) if n in ck.state_dict else "missing"
                raise CheckpointError(
                    f"{p} does not match final.pt: parameter {n!r} is {got}, "
                    f"final has {list(final[n].shape)}"
                )
        params.append({n: ck.state_dict[n].float() for n in names})
    return Trajectory([e for e, _ in found], params, final, final_path, [p for _, p in found])


def pca_directions(
    trajectory: Trajectory | str | Path, *, ignore: str = "biasbn", count: int = 2
) -> tuple[Directions, np.ndarray]:
    """Top principal directions of a training trajectory (Li et al. 2018, section 7).

    As in Li et al.'s ``setup_PCA_directions``: the rows are the displacements
    ``theta_epoch - theta_final`` (1-D tensors zeroed with ``ignore="biasbn"``),
    PCA is sklearn's (the rows are centred) computed by SVD, and the components are
    unit vectors used as they are. Signs are fixed so the largest entry is positive.

    Returns:
        the directions (``meta["explained_variance_ratio"]`` holds the ratios) and
        the projected path: one ``(x, y)`` row per epoch, then the final point,
        each coordinate ``<theta - theta_final, d_i>`` as in ``project_trajectory``.
    """
    _check_choice(ignore, IGNORES, "ignore option")
    traj = trajectory if isinstance(trajectory, Trajectory) else load_trajectory(trajectory)
    names = list(traj.final)

    def flat(p: Params) -> torch.Tensor:
        parts = []
        for n in names:
            t = (p[n] - traj.final[n]).double()
            if ignore == "biasbn" and t.dim() <= 1:
                t = torch.zeros_like(t)
            parts.append(t.reshape(-1))
        return torch.cat(parts)

    m = torch.stack([flat(p) for p in traj.params]).numpy()
    if len(m) < count:
        raise SharpscopeError(
            f"{count} PCA directions need at least {count} epoch checkpoints, found {len(m)}"
        )
    centred = m - m.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    total = float((s**2).sum())
    ratio = (s**2 / total) if total > 0 else np.zeros_like(s)
    comps = vt[:count].copy()
    for i in range(count):
        if comps[i, np.argmax(np.abs(comps[i]))] < 0:
            comps[i] = -comps[i]
    vectors = []
    for c in comps:
        t = torch.from_numpy(c).float()
        off, v = 0, {}
        for n in names:
            k = traj.final[n].numel()
            v[n] = t[off : off + k].reshape(traj.final[n].shape).clone()
            off += k
        vectors.append(v)
    coords = m @ comps.T
    path = np.vstack([coords, np.zeros((1, count))])
    dirs = Directions(
        "pca",
        vectors,
        ignore=ignore,
        meta={
            "explained_variance_ratio": [float(r) for r in ratio[:count]],
            "epochs": traj.epochs,
            "run": str(traj.final_path.parent),
        },
    )
    return dirs, path
