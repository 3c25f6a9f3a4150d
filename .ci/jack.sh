#!/usr/bin/env bash
# JACK for CI: install the Debian packages, start a dummy-driver server in the background, stop it.
#
#   .ci/jack.sh install   # apt-get jackd2 + PortAudio (idempotent; skipped when jackd exists)
#   .ci/jack.sh start     # jackd --no-realtime -d dummy, waits until it answers, writes a pid file
#   .ci/jack.sh stop      # stops the server started by `start`
#   .ci/jack.sh status    # exit 0 when a JACK server answers
#
# Environment: FXCAP_JACK_RATE (48000), FXCAP_JACK_PERIOD (256 samples; 128 without real-time
# priority occasionally dropped samples), FXCAP_JACK_PIDFILE (/tmp/fxcap-jackd.pid),
# FXCAP_JACK_LOG (/tmp/fxcap-jackd.log).
set -euo pipefail

RATE="${FXCAP_JACK_RATE:-48000}"
PERIOD="${FXCAP_JACK_PERIOD:-256}"
PIDFILE="${FXCAP_JACK_PIDFILE:-/tmp/fxcap-jackd.pid}"
LOG="${FXCAP_JACK_LOG:-/tmp/fxcap-jackd.log}"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

jack_install() {
    if command -v jackd >/dev/null 2>&1 && command -v jack_wait >/dev/null 2>&1 \
        && ldconfig -p | grep libportaudio.so.2 >/dev/null; then
        echo "jack.sh: jackd and PortAudio already installed"
        return 0
    fi
    # Do not let the package rewrite /etc/security/limits.d (and do not ask about it).
    echo "jackd2 jackd/tweak_rt_limits boolean false" | as_root debconf-set-selections
    as_root apt-get update -qq
    # Without --no-install-recommends this pulls ~680 packages.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        jackd2 libportaudio2 libjack-jackd2-0
}

jack_running() {
    # jack_wait -c exits 0 either way; it prints "running" or "not running".
    command -v jack_wait >/dev/null 2>&1 && [ "$(JACK_NO_START_SERVER=1 jack_wait -c 2>/dev/null)" = "running" ]
}

jack_start() {
    if jack_running; then
        echo "jack.sh: a JACK server is already running"
        return 0
    fi
    JACK_NO_START_SERVER=1 nohup jackd --no-realtime -d dummy -r "$RATE" -p "$PERIOD" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    if ! JACK_NO_START_SERVER=1 jack_wait -w -t 10 >/dev/null 2>&1; then
        echo "jack.sh: jackd did not come up within 10 s; its log ($LOG):" >&2
        cat "$LOG" >&2 || true
        jack_stop
        return 1
    fi
    echo "jack.sh: jackd running (pid $(cat "$PIDFILE"), ${RATE} Hz, period ${PERIOD})"
}

jack_stop() {
    if [ ! -f "$PIDFILE" ]; then
        echo "jack.sh: no pid file ($PIDFILE); nothing to stop"
        return 0
    fi
    pid="$(cat "$PIDFILE")"
    rm -f "$PIDFILE"
    # Only a jackd we started: a stale pid file may name an unrelated process by now.
    if ! kill -0 "$pid" 2>/dev/null || [ "$(ps -p "$pid" -o comm= 2>/dev/null)" != "jackd" ]; then
        echo "jack.sh: jackd (pid $pid) is not running any more"
        return 0
    fi
    kill "$pid"
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid"
    fi
    echo "jack.sh: jackd stopped"
}

case "${1:-}" in
    install) jack_install ;;
    start) jack_start ;;
    stop) jack_stop ;;
    status) jack_running ;;
    *)
        echo "usage: $0 install|start|stop|status" >&2
        exit 2
        ;;
esac
