#!/usr/bin/env bash
# The long run of the coverage-guided fuzz targets whose figures are in BENCHMARKS.md, Fuzzing:
#
#   bash fuzz/long-run.sh [MINUTES]      # 10 minutes a target by default
#
# Each target runs in rounds of 60 s on its own corpus (fuzz/corpus/TARGET, kept between rounds
# and runs, never committed) grown from fuzz/seeds/TARGET, two targets at a time (the machine
# has two cores). Rounds bound each process's memory: the webhook target builds its requests
# with actix-web's TestRequest, which keeps every request it built (about 1.4 KB each). A crash
# stops that target; its input is saved under target/fuzz-artifacts/TARGET/. Prints one table
# row a target and exits 1 if any crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
bash tests/fuzz/install.sh
cargo fuzz build -s none
mkdir -p target/fuzz-long

run_target() {
  local target=$1 minutes=$2 runs=0 started log round executed
  local corpus=fuzz/corpus/$target artifacts=target/fuzz-artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  started=$(date +%s)
  for round in $(seq 1 "$minutes"); do
    log=target/fuzz-long/$target-$round.log
    if ! cargo fuzz run -s none "$target" "$corpus" "fuzz/seeds/$target" -- -max_total_time=60 \
      -rss_limit_mb=4096 -print_final_stats=1 "-artifact_prefix=$artifacts/" >"$log" 2>&1; then
      echo "| $target | crashed in round $round: $log, input in $artifacts/ |"
      return 1
    fi
    executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    runs=$((runs + executed))
  done
  local seconds=$(($(date +%s) - started))
  local coverage features
  coverage=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -E 's/.* cov: ([0-9]+).*/\1/')
  features=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -E 's/.* ft: ([0-9]+).*/\1/')
  printf '| `%s` | %d | %d s | %d | %s | %s | %d | 0 |\n' "$target" "$runs" "$seconds" \
    $((runs / seconds)) "$coverage" "$features" "$(find "$corpus" -type f | wc -l)"
}
export -f run_target

echo "| Target | Inputs | Time | Inputs/s | Coverage (edges) | Features | Corpus | Crashes |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' expression workflow ivr webhook rest_form |
  xargs -P 2 -I{} bash -c "run_target {} $minutes"
