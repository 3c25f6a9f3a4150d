"""Signal maths shared by several stages (capture, dataset, modeling, report), one job per module.

* :mod:`fxcap.dsp.levels`: dB and amplitude conversions, RMS.
* :mod:`fxcap.dsp.esr`: the error-to-signal ratio, the one definition every stage uses.
* :mod:`fxcap.dsp.resample`: band-limited (windowed-sinc) interpolation: fractional delays and
  resampling on a linear time axis (clock drift).
* :mod:`fxcap.dsp.synth`: test-signal synthesis used by more than one stage (Karplus-Strong strings).

Every function takes NumPy arrays in full-scale units (1.0 = 0 dBFS) and computes in float64. The
package imports nothing else of fxcap but :mod:`fxcap.numba_cache`, so every layer may use it.
"""
