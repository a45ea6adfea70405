"""Directions in parameter space to cut the loss landscape along.

Four kinds, all keyed by parameter NAME (never by position):

* ``random``: seeded Gaussian directions with the normalisation of Li et al. 2018,
  "Visualizing the Loss Landscape of Neural Nets" (``filter``, ``layer`` or ``none``),
  optionally orthogonalised;
* ``eigen``: Hessian eigenvectors from ``sharpscope eigen --save-vectors``;
* ``difference``: ``theta_b - theta_a`` between two checkpoints;
* ``pca``: the top principal directions of a training trajectory (Li et al. 2018, section 7).

A :class:`Directions` object holds the RAW vectors plus the normalisation recipe.
Filter normalisation is relative to the weights, so the recipe is applied against
each model's own weights when the directions are used (:meth:`Directions.resolve`):
saving random directions once and reusing them on an SGD, a SAM and an XSAM minimum
cuts all three along equivalent directions (same Gaussian draw, each rescaled to its
own filters). BatchNorm running statistics are buffers and never part of a direction.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import load_checkpoint
from ..errors import CheckpointError, SharpscopeError
from ..utils import atomic_torch_save

__all__ = [
    "NORMS",
    "IGNORES",
    "Directions",
    "normalize_direction",
    "normalize_directions",
    "orthogonalize",
    "random_directions",
    "eigen_directions",
    "difference_direction",
    "pca_directions",
    "Trajectory",
    "load_trajectory",
    "save_directions",
    "load_directions",
    "model_params",
]

NORMS = ("filter", "layer", "none")
IGNORES = ("biasbn", "none")
KINDS = ("random", "eigen", "difference", "pca")
DIRECTIONS_FORMAT = "sharpscope-directions"
VECTORS_FORMAT = "sharpscope-vectors"

Params = dict[str, torch.Tensor]


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise SharpscopeError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")
    return value


def model_params(model: nn.Module | Params) -> Params:
    """``{name: detached tensor}`` of a model's trainable parameters (a dict passes through)."""
    if isinstance(model, nn.Module):
        return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    return {n: t.detach() for n, t in model.items()}


# ----------------------------------------------------------------------------- normalisation
def normalize_direction(
    d: torch.Tensor, w: torch.Tensor, *, norm: str = "filter", ignore: str = "biasbn"
) -> torch.Tensor:
    """Rescale one direction tensor ``d`` against its weight tensor ``w`` (returns a new tensor).

    Replicates ``net_plotter.normalize_directions_for_weights`` of Li et al. 2018,
    "Visualizing the Loss Landscape of Neural Nets":

    * ``d.dim() <= 1`` (biases, BatchNorm weights and biases): set to zero when
      ``ignore="biasbn"``, otherwise set to the weights themselves (``d = w``);
    * ``norm="filter"``: each filter ``d[i]`` (slice along dim 0) becomes
      ``d[i] * ||w[i]|| / (||d[i]|| + 1e-10)``;
    * ``norm="layer"``: the whole tensor becomes ``d * ||w|| / (||d|| + 1e-10)``;
    * ``norm="none"``: ``d`` is returned unchanged, except that 1-D tensors are
      zeroed when ``ignore="biasbn"`` (Li et al. copy ``w`` into 1-D entries even
      here; sharpscope keeps raw means raw).
    """
    _check_choice(norm, NORMS, "normalisation")
    _check_choice(ignore, IGNORES, "ignore option")
    if d.shape != w.shape:
        raise SharpscopeError(
            f"direction shape {list(d.shape)} does not match weight shape {list(w.shape)}"
        )
    d = d.to(dtype=w.dtype, device=w.device)
    if d.dim() <= 1:
        if ignore == "biasbn":
            return torch.zeros_like(w)
        return d.clone() if norm == "none" else w.detach().clone()
    if norm == "none":
        return d.clone()
    if norm == "layer":
        return d * (w.norm() / (d.norm() + 1e-10))
    dn = d.reshape(d.shape[0], -1).norm(dim=1)
    wn = w.reshape(w.shape[0], -1).norm(dim=1)
    scale = (wn / (dn + 1e-10)).reshape(-1, *([1] * (d.dim() - 1)))
    return d * scale


def normalize_directions(
    direction: Params, weights: Params, *, norm: str = "filter", ignore: str = "biasbn"
) -> Params:
    """:func:`normalize_direction` applied to every named tensor of ``direction``."""
    return {
        n: normalize_direction(d, weights[n], norm=norm, ignore=ignore)
        for n, d in direction.items()
    }


def _blocks(t: torch.Tensor, norm: str) -> torch.Tensor:
    """View ``t`` as rows that are the normalisation blocks: filters, the whole tensor."""
    if norm == "filter" and t.dim() > 1:
        return t.reshape(t.shape[0], -1)
    return t.reshape(1, -1)


def orthogonalize(
    d1: Params, d2: Params, weights: Params, *, norm: str = "filter", ignore: str = "biasbn"
) -> Params:
    """Gram-Schmidt of ``d2`` against ``d1`` after normalisation, keeping ``d2`` normalised.

    Both inputs are already normalised. The projection is done block by block,
    where the blocks are the normalisation units: each filter for ``filter``, each
    tensor for ``layer``, the whole vector for ``none``. In every block
    ``d2_b <- d2_b - (<d1_b, d2_b> / <d1_b, d1_b>) d1_b`` and then ``d2_b`` is
    rescaled to its norm before the projection (for ``filter``/``layer`` that is the
    weight's norm again). Orthogonal blocks sum to orthogonal vectors, and rescaling a
    block keeps it orthogonal, so the result is exactly orthogonal to ``d1`` AND keeps
    its normalisation: the plane is not skewed and neither axis is shrunk. Blocks
    where ``d1`` is zero are left as they are; blocks where ``d2`` is parallel to
    ``d1`` (e.g. 1-D tensors set to ``w`` in both with ``ignore="none"``) become zero.
    """
    _check_choice(norm, NORMS, "normalisation")
    out: Params = {}
    for n, b in d2.items():
        a = d1.get(n)
        if a is None:
            out[n] = b.clone()
            continue
        ab, bb = _blocks(a, norm).double(), _blocks(b, norm).double()
        aa = (ab * ab).sum(dim=1, keepdim=True)
        proj = torch.where(aa > 0, (ab * bb).sum(dim=1, keepdim=True) / aa.clamp_min(1e-300), 0.0)
        before = bb.norm(dim=1, keepdim=True)
        nb = bb - proj * ab
        after = nb.norm(dim=1, keepdim=True)
        nb = torch.where(
            after > 1e-12 * before.clamp_min(1e-300), nb * (before / after.clamp_min(1e-300)), 0.0
        )
        out[n] = nb.reshape(b.shape).to(b.dtype)
    return out


# ----------------------------------------------------------------------------- the container
@dataclass
class Directions:
    """Raw direction vectors plus the recipe that turns them into usable directions.

    Attributes:
        kind: ``random``, ``eigen``, ``difference`` or ``pca``.
        vectors: the raw vectors, one ``{name: tensor}`` dict each (CPU tensors).
        norm, ignore: the normalisation recipe applied by :meth:`resolve`.
        seed: the random seed (``random`` kind).
        orthogonal: orthogonalise the second direction against the first on use.
        meta: anything else (eigenvalues, explained variance, sources).
    """

    kind: str
    vectors: list[Params]
    norm: str = "none"
    ignore: str = "none"
    seed: int | None = None
    orthogonal: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_choice(self.kind, KINDS, "direction kind")
        _check_choice(self.norm, NORMS, "normalisation")
        _check_choice(self.ignore, IGNORES, "ignore option")
        if not self.vectors:
            raise SharpscopeError("a Directions object needs at least one vector")

    @property
    def names(self) -> list[str]:
        return list(self.vectors[0])

    @property
    def shapes(self) -> dict[str, list[int]]:
        return {n: list(t.shape) for n, t in self.vectors[0].items()}

    def __len__(self) -> int:
        return len(self.vectors)

    def check_compatible(self, weights: Params, *, where: str = "the model") -> None:
        """Raise a one-line error naming the first parameter missing or of another shape."""
        for n, shape in self.shapes.items():
            if n not in weights:
                raise SharpscopeError(
                    f"directions name parameter {n!r} which {where} does not have"
                )
            if list(weights[n].shape) != shape:
                raise SharpscopeError(
                    f"directions do not fit {where}: parameter {n!r} has shape {list(weights[n].shape)} "
                    f"but the directions have {shape}"
                )

    def resolve(self, weights: nn.Module | Params, *, count: int | None = None) -> list[Params]:
        """The usable directions for the model with these ``weights``.

        Each raw vector is normalised against ``weights`` (:func:`normalize_direction`),
        then, if ``orthogonal``, every later direction is orthogonalised against the
        earlier ones (:func:`orthogonalize`). Results live on the weights' device and dtype.
        """
        w = model_params(weights)
        self.check_compatible(w)
        vecs = self.vectors[: count or len(self.vectors)]
        out: list[Params] = []
        for v in vecs:
            d = normalize_directions(v, {n: w[n] for n in v}, norm=self.norm, ignore=self.ignore)
            if self.orthogonal:
                for prev in out:
                    d = orthogonalize(prev, d, w, norm=self.norm, ignore=self.ignore)
            out.append(d)
        return out

    def subset(self, indices: list[int]) -> Directions:
        return Directions(
            self.kind,
            [self.vectors[i] for i in indices],
            self.norm,
            self.ignore,
            self.seed,
            self.orthogonal,
            dict(self.meta),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": DIRECTIONS_FORMAT,
            "version": 1,
            "kind": self.kind,
            "norm": self.norm,
            "ignore": self.ignore,
            "seed": self.seed,
            "names": self.names,
            "shapes": self.shapes,
            "directions": [
                {n: t.detach().cpu().clone() for n, t in v.items()} for v in self.vectors
            ],
            "meta": {**self.meta, "orthogonal": bool(self.orthogonal)},
        }

    def save(self, path: str | Path) -> Path:
        """Write the plain-data directions file (loads with ``weights_only=True``)."""
        path = Path(path)
        atomic_torch_save(self.to_dict(), path)
        return path


def save_directions(directions: Directions, path: str | Path) -> Path:
    """Save ``directions`` to ``path`` (see :meth:`Directions.save`)."""
    return directions.save(path)


def _load_plain(path: str | Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise SharpscopeError(f"no such {what} file: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the same user error
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SharpscopeError(f"{path} is not a readable {what} file: {first[:160]}") from exc


def load_directions(path: str | Path) -> Directions:
    """Load a file written by :func:`save_directions` (``torch.load(weights_only=True)`` only)."""
    obj = _load_plain(path, "directions")
    if not isinstance(obj, dict) or obj.get("format") != DIRECTIONS_FORMAT:
        raise SharpscopeError(
            f"{path} is not a sharpscope directions file (format {DIRECTIONS_FORMAT!r})"
        )
    if int(obj.get("version", 0)) > 1:
        raise SharpscopeError(
            f"{path}: directions format version {obj.get('version')} is newer than this sharpscope"
        )
    meta = dict(obj.get("meta") or {})
    orthogonal = bool(meta.pop("orthogonal", False))
    vectors = [dict(v) for v in obj.get("directions") or []]
    if not vectors:
        raise SharpscopeError(f"{path} holds no directions")
    return Directions(
        kind=obj.get("kind", "random"),
        vectors=vectors,
        norm=obj.get("norm", "none"),
        ignore=obj.get("ignore", "none"),
        seed=obj.get("seed"),
        orthogonal=orthogonal,
        meta=meta,
    )


# ----------------------------------------------------------------------------- constructors
def random_directions(
    weights: nn.Module | Params,
    *,
    count: int = 2,
    seed: int = 0,
    norm: str = "filter",
    ignore: str = "biasbn",
    orthogonal: bool = False,
    names: list[str] | None = None,
) -> Directions:
    """Seeded Gaussian directions (raw) with a normalisation recipe (Li et al. 2018).

    The draw is made on the CPU in float32, name by name in ``named_parameters``
    order, from ``torch.Generator().manual_seed(seed)``: the same seed gives the same
    raw directions on any device. Call :meth:`Directions.resolve` to normalise them.
    """
    if count < 1:
        raise SharpscopeError(f"direction count must be at least 1, got {count}")
    w = model_params(weights)
    keys = list(w) if names is None else list(names)
    g = torch.Generator().manual_seed(int(seed))
    vectors = [
        {n: torch.randn(tuple(w[n].shape), generator=g, dtype=torch.float32) for n in keys}
        for _ in range(count)
    ]
    return Directions(
        "random", vectors, norm=norm, ignore=ignore, seed=int(seed), orthogonal=orthogonal
    )


def eigen_directions(path: str | Path, *, count: int = 2) -> Directions:
    """Hessian eigenvectors from a file written by ``sharpscope eigen --save-vectors``.

    The vectors are used as they are (``norm="none"``): unit vectors in parameter
    space, so the axis is the distance along the eigenvector.
    """
    obj = _load_plain(path, "eigenvector")
    if not isinstance(obj, dict) or obj.get("format") != VECTORS_FORMAT:
        raise SharpscopeError(
            f"{path} is not a sharpscope vectors file (format {VECTORS_FORMAT!r})"
        )
    vectors = [dict(v) for v in obj.get("vectors") or []]
    if len(vectors) < count:
        raise SharpscopeError(f"{path} holds {len(vectors)} eigenvector(s) but {count} are needed")
    vals = obj.get("eigenvalues")
    meta = {
        "source": obj.get("source"),
        "which": obj.get("which"),
        "mode": obj.get("mode"),
        "samples": obj.get("samples"),
        "eigenvalues": [
            float(v) for v in (vals.tolist() if isinstance(vals, torch.Tensor) else vals or [])
        ][:count],
    }
    return Directions(
        "eigen", [{n: t.float() for n, t in v.items()} for v in vectors[:count]], meta=meta
    )


def difference_direction(a: nn.Module | Params, b: nn.Module | Params) -> Directions:
    """The direction ``theta_b - theta_a`` (raw, ``norm="none"``)."""
    pa, pb = model_params(a), model_params(b)
    for n, t in pa.items():
        if n not in pb:
            raise SharpscopeError(f"the second model has no parameter {n!r}")
        if t.shape != pb[n].shape:
            raise SharpscopeError(
                f"parameter {n!r} has shape {list(t.shape)} in the first model "
                f"and {list(pb[n].shape)} in the second"
            )
    return Directions(
        "difference", [{n: (pb[n].cpu().float() - t.cpu().float()) for n, t in pa.items()}]
    )


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


def load_trajectory(run_dir: str | Path) -> Trajectory:
    """Read ``epoch_XXX.pt`` and ``final.pt`` of a run folder written by ``sharpscope train``."""
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
    names = [n for n, p in final_ck.build_model().named_parameters() if p.requires_grad]
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
