"""The fxcap report: one self-contained HTML page (figures and audio embedded) plus PNGs and a JSON.

Build::

    from fxcap.report import build_report
    build_report("reports/od3", session="sessions/od3", dataset="datasets/od-3",
                 runs=["runs/od-3/concat-gru-s0", "runs/od-3/dynamichyper-gru-s0"],
                 settings=[{"drive": 0}, {"drive": 10}])

or ``fxcap report`` (defaults: the newest session and dataset, the evaluated runs). Sections: summary,
capture quality per take, knob response of device and models, spectrograms, audio players,
training curves, the comparison table and notes. Modules: :mod:`~fxcap.report.measure` (gain, THD,
gain reduction), :mod:`~fxcap.report.excerpts` (what is analysed), :mod:`~fxcap.report.selection`
(which settings), :mod:`~fxcap.report.response` (device and model measurements),
:mod:`~fxcap.report.figures` (PNG bytes), :mod:`~fxcap.report.html` (the page),
:mod:`~fxcap.report.build` (all of it).
"""

from fxcap.report.build import HTML_NAME, JSON_NAME, ReportConfig, ReportInputs, build_report, resolve_inputs
from fxcap.report.excerpts import ExcerptConfig
from fxcap.report.selection import parse_setting

__all__ = ["ExcerptConfig", "HTML_NAME", "JSON_NAME", "ReportConfig", "ReportInputs", "build_report", "parse_setting", "resolve_inputs"]
