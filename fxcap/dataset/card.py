"""The dataset card: ``README.md`` in the dataset folder, rendered from the manifest.

It starts with a Hugging Face style YAML header (so the hub and ``datasets`` find the splits), then
tells what was captured, how it was split, how good the capture is and how to load it.
"""

from __future__ import annotations

from typing import Any

from fxcap.capture.backend_details import BackendDetails
from fxcap.dataset.splits import ALL_SPLITS


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def render_card(manifest: dict[str, Any]) -> str:
    """Markdown text of the card for a dataset ``manifest`` (the ``dataset.json`` document)."""
    name = manifest["name"]
    device = manifest["device"]
    rate = manifest["sample_rate"]
    splits = manifest["splits"]
    split_cfg = manifest["split_config"]
    lines: list[str] = ["---", f"pretty_name: {name} (fxcap capture)", "tags:", "- audio", "- audio-effects", "- fxcap",
                        "configs:", "- config_name: default", "  data_files:"]
    for split in ALL_SPLITS:
        if split in splits:
            lines += [f"  - split: {split}", f"    path: data/{split}-*.parquet"]
    lines += ["---", "", f"# {name}: captured with fxcap", ""]
    lines += [
        f"Input/output recordings of the **{device['name']}** ({device.get('kind', 'effect')}) at "
        f"{len(manifest['takes'])} knob setting(s), {rate} Hz mono float32. "
        f"{device.get('description', '')}".rstrip(),
        "",
        "## Knobs",
        "",
        "| knob | range | taper | column (normalized to [-1, 1]) | raw column |",
        "|---|---|---|---|---|",
    ]
    for knob in manifest["knobs"]:
        if knob.get("values"):
            rng = " / ".join(knob["values"])
        else:
            rng = f"{knob['minimum']:g} .. {knob['maximum']:g}" + (f" {knob['unit']}" if knob.get("unit") else "")
        lines.append(f"| {knob['name']} | {rng} | {knob['taper']} | `{knob['column']}` | `{knob['raw_column']}` |")

    settings = list(dict.fromkeys(t["setting"] + (" (held out)" if t["held_out"] else "") for t in manifest["takes"]))
    lines += ["", "## Plan", "", f"{len(manifest['takes'])} take(s) used, {len(settings)} distinct setting(s):", ""]
    lines += [f"- {s}" for s in settings]
    for session in manifest["sessions"]:
        for skipped in session["takes_skipped"]:
            lines.append(f"- skipped: {session['name']}/{skipped['take_id']} ({skipped['reason']})")

    plan = manifest["plan"]
    lines += [
        "",
        "## Splits",
        "",
        f"Split along time, identically for every take: only the trainable regions (sweep, noise, program) are used "
        f"(left out: {', '.join(plan['excluded_regions']) or 'nothing'}), cut into segments of about "
        f"{split_cfg['segment_seconds']:g} s, {split_cfg['mode']}, "
        f"train/valid/test = {split_cfg['train']:.0%}/{split_cfg['valid']:.0%}/{split_cfg['test']:.0%} of the samples. "
        "No stretch of input audio appears in two splits.",
    ]
    if plan.get("signals"):
        lines.append(
            f"The sessions played {len(plan['signals'])} different signals (e.g. one per imported input file); each is "
            "split along time on its own, and segment indices are numbered across all of them."
        )
    if manifest["holdout"]:
        lines.append(
            f"Held out knob settings ({'; '.join(manifest['holdout'])}): all their segments are in the `holdout` split; "
            "`time_split` keeps the split their input belongs to (`time_split == 'test'` there is unseen knob and unseen input)."
        )
    lines += ["", "| split | rows | takes | seconds per stream | shards |", "|---|---|---|---|---|"]
    for split in ALL_SPLITS:
        if split in splits:
            s = splits[split]
            lines.append(f"| {split} | {s['rows']} | {s['takes']} | {s['seconds']:.1f} | {len(s['files'])} |")

    labels = {
        "noise_floor_dbfs": "noise floor (dBFS)",
        "repeatability_esr": "repeatability ESR (validation copy A vs B)",
        "latency_samples": "latency (samples)",
        "drift_ppm": "clock drift (ppm)",
    }
    lines += ["", "## Capture quality", "", "| figure | min | median | max |", "|---|---|---|---|"]
    for key, label in labels.items():
        stats = manifest["quality"].get(key)
        if stats:
            lines.append(f"| {label} | {_fmt(stats['min'])} | {_fmt(stats['median'])} | {_fmt(stats['max'])} |")
    sessions = ", ".join(f"{s['name']} ({BackendDetails.from_dict(s['backend']).name})" for s in manifest["sessions"])
    lines += ["", f"Sessions: {sessions}. Signal sha256 `{manifest['signal']['sha256']}`.", ""]

    lines += [
        "## Columns",
        "",
        "One row per (take, segment): `device`, `backend`, `sample_rate`, `split`, `time_split`, `session`, `take_id`, "
        "`take_index`, `segment_index`, `region`, `region_kind`, `start_sample`, `start_seconds`, `num_samples`, the knob "
        "columns above, `latency_samples`, `gain_db`, `polarity`, `drift_ppm`, `noise_floor_dbfs`, `repeatability_esr`, "
        "and the audio: `input` and `target` (float32 lists, `num_samples` long, time-aligned; targets may exceed ±1).",
        "",
        "## Load",
        "",
        "```python",
        "import pandas as pd",
        "train = pd.read_parquet(\"data\", filters=[(\"split\", \"==\", \"train\")])",
        "",
        "import pyarrow.parquet as pq, json",
        "table = pq.read_table(\"data/train-00000-of-%05d.parquet\")" % len(splits.get("train", {"files": [1]})["files"]),
        "meta = json.loads(table.schema.metadata[b\"fxcap\"])   # knobs, ranges, sample rate, window",
        "",
        "from datasets import load_dataset",
        "ds = load_dataset(\"parquet\", data_files={\"train\": \"data/train-*.parquet\", \"test\": \"data/test-*.parquet\"})",
        "",
        "from fxcap.dataset import make_dataloader",
        f"loader = make_dataloader(\".\", \"train\", window={manifest['window']}, batch_size=16)",
        "for x, y, knobs in loader:   # (B, T), (B, T), (B, K) float32",
        "    ...",
        "```",
        "",
    ]
    if manifest.get("wav_index"):
        lines += [
            f"WAV pairs: `{manifest['wav_index']}` (and `wav/index.parquet`) lists every row with `input_path` and "
            "`target_path`, relative to `wav/` (32-bit float WAV; inputs are shared by the takes of a session).",
            "",
        ]
    lines += [f"Dataset hash: `{manifest['dataset_hash']}` (fxcap {manifest['fxcap_version']}, dataset format "
              f"{manifest['dataset_version']}). Check it with `fxcap dataset validate <folder>`.", ""]
    return "\n".join(lines)
