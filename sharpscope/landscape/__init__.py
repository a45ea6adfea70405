"""Loss-landscape slices: directions, 1D/2D grids, interpolation, trajectories and plots.

Follows Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets" (filter
normalisation, PCA trajectory planes), with a batched, resumable grid engine.
"""

from .directions import (
    Directions,
    Trajectory,
    difference_direction,
    eigen_directions,
    load_directions,
    load_trajectory,
    normalize_direction,
    normalize_directions,
    orthogonalize,
    pca_directions,
    random_directions,
    save_directions,
)
from .grid import GridSettings, Surface, evaluate_grid, evaluate_point, grid_axis

__all__ = [
    "Directions",
    "Trajectory",
    "difference_direction",
    "eigen_directions",
    "load_directions",
    "load_trajectory",
    "normalize_direction",
    "normalize_directions",
    "orthogonalize",
    "pca_directions",
    "random_directions",
    "save_directions",
    "GridSettings",
    "Surface",
    "evaluate_grid",
    "evaluate_point",
    "grid_axis",
]
