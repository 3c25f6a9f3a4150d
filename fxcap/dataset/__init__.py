"""Dataset tooling: capture sessions -> Parquet/WAV shards with leakage-free splits -> fast torch loaders.

Build::

    from fxcap.dataset import BuildConfig, SplitConfig, build_dataset
    info = build_dataset(["sessions/od3-2024"], "datasets/od-3", BuildConfig(holdout=("drive=5",)))

Check::

    from fxcap.dataset import load_dataset_info, validate
    print(load_dataset_info("datasets/od-3").describe())
    for problem in validate("datasets/od-3"):
        print(problem)

Load::

    from fxcap.dataset import make_dataloader, SequenceDataset
    for x, y, knobs in make_dataloader("datasets/od-3", "train", window=2048, batch_size=16):
        ...  # (B, T), (B, T), (B, K) float32, knobs normalized to [-1, 1]

Every dataset argument may also be a URI: ``s3://bucket/datasets/od3``, ``gs://...``, ``file://...``,
``memory://...`` (see :mod:`fxcap.dataset.remote`). Shards are then streamed (never a whole dataset in
memory) and the loader caches them locally one by one, on demand, within ``cache_max_bytes``;
``build_dataset(..., workers=N or ray="auto")`` writes shards in parallel with identical bytes.

Synthetic sessions for tests live in :mod:`fxcap.dataset.testing`.
"""

from fxcap.dataset.build import BuildConfig, build_dataset
from fxcap.dataset.cache import SplitCache, open_split_cache
from fxcap.dataset.holdout import HoldoutSpec, parse_holdout
from fxcap.dataset.manifest import DatasetInfo, SplitInfo, info, load_dataset_info
from fxcap.dataset.schema import DATASET_VERSION, METADATA_KEY
from fxcap.dataset.splits import ALL_SPLITS, HOLDOUT_SPLIT, SPLITS, Segment, SplitConfig, SplitPlan, plan_splits
from fxcap.dataset.validate import Problem, validate

_LAZY = {name: "fxcap.dataset.loader" for name in ("SequenceDataset", "WindowBatchSampler", "WindowDataset", "make_dataloader")}
"""Names imported on first use: the loader needs torch, which build workers and ``dataset info`` do not."""


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fxcap.dataset' has no attribute {name!r}")


__all__ = [
    "ALL_SPLITS",
    "BuildConfig",
    "DATASET_VERSION",
    "DatasetInfo",
    "HOLDOUT_SPLIT",
    "HoldoutSpec",
    "METADATA_KEY",
    "Problem",
    "SPLITS",
    "Segment",
    "SequenceDataset",
    "SplitCache",
    "SplitConfig",
    "SplitInfo",
    "SplitPlan",
    "WindowBatchSampler",
    "WindowDataset",
    "build_dataset",
    "info",
    "load_dataset_info",
    "make_dataloader",
    "open_split_cache",
    "parse_holdout",
    "plan_splits",
    "validate",
]
