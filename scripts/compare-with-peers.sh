#!/usr/bin/env bash
# Loads the province workload into iocdb, VictoriaMetrics and Prometheus (Debian packages,
# on 127.0.0.1 only), runs the dashboard queries of shared/WORKLOAD.md on each, prints
# latency side by side, and fails if any iocdb answer differs from Prometheus'.
#
#   scripts/compare-with-peers.sh [SCALE] [DAYS] [REPEATS]     (default 0.1 1 20)
#
# Needs: apt-get install -y victoria-metrics prometheus
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in victoria-metrics prometheus promtool; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y victoria-metrics prometheus" >&2; exit 2; }
done
cargo build --release -q -p iocdb-peer-compare --bin peer_compare
exec ./target/release/peer_compare "${1:-0.1}" "${2:-1}" "${3:-20}"
