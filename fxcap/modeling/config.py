"""Model configuration: one dataclass describes every conditioned RNN fxcap can build.

The defaults reproduce the paper's models (hidden size 32, one layer, ``Linear(32, 1)`` output, no
skip connection; the paper: Yeh, Hsiao, Yang, *Hyper Recurrent Neural Network: Condition Mechanisms for
Black-box Audio Effect Modeling*); see :mod:`fxcap.modeling.registry`. The learned filters are options beyond the paper.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from fxcap.errors import ModelError
from fxcap.modeling.schemes import BUILTIN_SCHEMES, get_scheme

CONDS: tuple[str, ...] = BUILTIN_SCHEMES
"""The built-in conditioning schemes, in the paper's order (the registry, :mod:`fxcap.modeling.schemes`,
also lists schemes registered later)."""

CELLS: tuple[str, ...] = ("gru", "lstm")
"""Recurrent cell types."""

ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "elu", "gelu")
"""Activations allowed in the conditioning MLPs (FiLM and StaticHyper)."""

DEFAULT_DYNAMIC_NZ = {"gru": 12, "lstm": 6}
"""The paper's n_z per gate of the DynamicHyper projection (reproduces its parameter counts)."""


@dataclass
class ModelConfig:
    """Everything needed to build one model with :func:`fxcap.modeling.registry.build_model`.

    Attributes:
        cond: conditioning scheme, a name registered in :mod:`fxcap.modeling.schemes` (:data:`CONDS`
            and any scheme registered later).
        cell: recurrent cell, ``"gru"`` or ``"lstm"``.
        num_knobs: number of knob values K the model reads (take it from the dataset).
        hidden_size: H, the main cell's hidden size (paper: 32).
        film_hidden: hidden sizes of the FiLM MLP ``K -> 32 -> 32`` (paper: (32, 32)).
        static_hidden: hidden sizes of the StaticHyper MLP ``K -> 8 -> 8`` (paper: (8, 8)).
        mlp_activation: activation after every MLP layer of FiLM and StaticHyper. ``tanh`` (the
            default) keeps the generated modulations a smooth, bounded function of the knobs, which
            helps at knob settings held out from training.
        dynamic_hidden: hidden size of the DynamicHyper's hyper cell (paper: 40; released code: 8).
        dynamic_nz: n_z per gate of the DynamicHyper projection; ``None`` means the paper's value
            for the cell (12 for GRU, 6 for LSTM; released code: 8). Read it through :attr:`nz`.
        pre_filter_poles / post_filter_poles: poles of the learned linear filters before and after
            the recurrent cell (:class:`fxcap.modeling.filters.LearnedIIR`; 0: none, the paper's).
            They give the model the long linear memory of a device's coupling high-passes, which a
            small RNN does not learn; each costs ``2 M + 1`` multiply-adds per sample and ``2 M + 1``
            parameters.
        knob_gains: a learned gain ``exp(w . c + b)`` of the knobs before the cell and one after it
            (:class:`fxcap.modeling.knob_gain.KnobGain`; ``2 (K + 1)`` parameters, 2 multiplies per
            sample): the signal level in the cell can follow a drive knob, which Concat's knobs
            cannot do otherwise (``docs/quality.md``).
        even_gain: run the cell on the input and on the inverted input and scale the even-order part
            of the result, ``(F[x] + F[-x]) / 2``, by a learned gain of the knobs (``exp(w . c + b)``,
            starting at 1, so the model starts equal to one without); the odd part
            ``(F[x] - F[-x]) / 2`` passes as it is. A clean setting can then turn off the cell's
            second-order distortion (its gates' products) while a saturated one keeps the device's
            asymmetry. Twice the cell's compute, ``K + 1`` parameters (``docs/quality.md``).
        seed: seed of the weight initialisation (``None``: use torch's global RNG as it stands).
    """

    cond: str = "concat"
    cell: str = "gru"
    num_knobs: int = 2
    hidden_size: int = 32
    film_hidden: tuple[int, ...] = (32, 32)
    static_hidden: tuple[int, ...] = (8, 8)
    mlp_activation: str = "tanh"
    dynamic_hidden: int = 40
    dynamic_nz: int | None = None
    pre_filter_poles: int = 0
    post_filter_poles: int = 0
    knob_gains: bool = False
    even_gain: bool = False
    seed: int | None = 0

    def __post_init__(self) -> None:
        self.cond = str(self.cond).lower()
        self.cell = str(self.cell).lower()
        self.film_hidden = tuple(int(v) for v in self.film_hidden)
        self.static_hidden = tuple(int(v) for v in self.static_hidden)
        get_scheme(self.cond)  # ModelError naming the registered schemes for an unknown one
        if self.cell not in CELLS:
            raise ModelError(f"unknown cell {self.cell!r}; choose one of {', '.join(CELLS)}")
        if self.mlp_activation not in ACTIVATIONS:
            raise ModelError(
                f"unknown mlp_activation {self.mlp_activation!r}; choose one of {', '.join(ACTIVATIONS)}"
            )
        for name in ("pre_filter_poles", "post_filter_poles"):
            if int(getattr(self, name)) < 0:
                raise ModelError(f"model config: {name} must be 0 (no filter) or a positive integer, got {getattr(self, name)!r}")
            setattr(self, name, int(getattr(self, name)))
        for name in ("num_knobs", "hidden_size", "dynamic_hidden"):
            if int(getattr(self, name)) < 1:
                raise ModelError(f"model config: {name} must be a positive integer, got {getattr(self, name)!r}")
            setattr(self, name, int(getattr(self, name)))
        if self.dynamic_nz is not None:
            if int(self.dynamic_nz) < 1:
                raise ModelError(f"model config: dynamic_nz must be a positive integer or null, got {self.dynamic_nz!r}")
            self.dynamic_nz = int(self.dynamic_nz)
        for name in ("film_hidden", "static_hidden"):
            sizes = getattr(self, name)
            if not sizes or min(sizes) < 1:
                raise ModelError(f"model config: {name} must be a non-empty list of positive sizes, got {list(sizes)}")

    @property
    def nz(self) -> int:
        """The DynamicHyper n_z per gate actually used (``dynamic_nz`` or the cell's default)."""
        return self.dynamic_nz if self.dynamic_nz is not None else DEFAULT_DYNAMIC_NZ[self.cell]

    @property
    def gates(self) -> int:
        """Number of gates G of the cell (GRU 3, LSTM 4)."""
        return 3 if self.cell == "gru" else 4

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists); :meth:`from_dict` reads it back."""
        data = asdict(self)
        data["film_hidden"] = list(self.film_hidden)
        data["static_hidden"] = list(self.static_hidden)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; unknown fields raise :class:`ModelError`."""
        if not isinstance(data, dict):
            raise ModelError(f"a model config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(
                f"model config has unknown field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}"
            )
        return cls(**data)
