#!/usr/bin/env bash
# The main job: set up (once), run the experiment sweep on Ray Tune, print the comparison
# tables (measured and published side by side), write the report with its figures
# (results/REPORT.md) and say where everything is.
#
#   ./run_all.sh [--experiment cpu|cpu_text|paper|smoke] [--datasets A,B] [--seeds 0,1,2]
#                [--data-dir DIR] [--results DIR]
#
# --experiment picks experiments/<name>.yaml (a grid of runs; the settings profile it uses,
# bench/profiles/<profile>.yaml, is named inside it); by default `paper` when an NVIDIA GPU
# is present, else `cpu`. Datasets and seeds default to the experiment's. Data comes from
# --data-dir or $BENCH_DATA_DIR; with neither, only the built-in synthetic data is used,
# and the script says so. Finished runs are never redone; interrupted ones resume; the
# lagging-encoder figure on synthetic data is made once.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
experiment_name="" datasets="" seeds="" results="$root/results" data_dir="${BENCH_DATA_DIR:-}"
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --experiment|--datasets|--seeds|--data-dir|--results)
      if [ $# -lt 2 ] || [ -z "$2" ] || [ "${2#--}" != "$2" ]; then
        echo "error: $1 needs a value (see ./run_all.sh --help)" >&2; exit 2
      fi ;;&
    --experiment) experiment_name="$2"; shift 2 ;;
    --profile) echo "error: run_all.sh takes --experiment NAME (experiments/NAME.yaml); a settings profile is named inside the experiment file" >&2; exit 2 ;;
    --datasets) datasets="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --data-dir) data_dir="$2"; shift 2 ;;
    --results) results="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option '$1' (see ./run_all.sh --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$data_dir" ] && [ ! -d "$data_dir" ]; then
  echo "error: data directory '$data_dir' does not exist; pass --data-dir DIR (a folder holding ptb/, yahoo_resplit/, ...) or unset BENCH_DATA_DIR" >&2
  exit 2
fi
"$root/scripts/setup_env.sh"
py="$root/.venv/bin/python"
if [ -z "$experiment_name" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    experiment_name=paper; echo "hardware: NVIDIA GPU found -> experiments/paper.yaml"
  else
    experiment_name=cpu; echo "hardware: no GPU -> experiments/cpu.yaml (reduced experiment)"
  fi
fi
experiment="$root/experiments/$experiment_name.yaml"
[ -f "$experiment" ] || { echo "error: no experiment file $experiment (see experiments/)" >&2; exit 2; }
profile="$("$py" -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['profile'])" "$experiment")"
if [ -n "$data_dir" ]; then
  export BENCH_DATA_DIR="$(cd "$data_dir" && pwd)"
elif [ -z "$datasets" ]; then
  datasets="synthetic"
  echo "no data directory (set BENCH_DATA_DIR or pass --data-dir): running on the built-in synthetic data only;"
  echo "  the yahoo/yelp runs need their folders under a data directory (see: python -m bench download list)"
fi
if [ -z "$datasets" ]; then
  datasets="$("$py" -c "import sys, yaml; print(','.join(yaml.safe_load(open(sys.argv[1]))['datasets']))" "$experiment")"
fi
cd "$root"
sweep_args=(--datasets "$datasets" --results "$results")
[ -n "$seeds" ] && sweep_args+=(--seeds "$seeds")
lagging_pid=""
if [ ! -f "$results/figures/lagging.json" ]; then  # the posterior-mean-space figure, once
  # He et al.'s full toy run with a GPU; on a CPU the reduced setting of the table (`cpu`).
  # It runs beside the sweep on one thread (a 50-unit model gains nothing from more) and
  # fills the CPU time the sweep's trial slots leave idle.
  case "$profile" in paper) lagging_profile=toy ;; smoke) lagging_profile=smoke ;; *) lagging_profile=cpu ;; esac
  mkdir -p "$results/figures"
  OMP_NUM_THREADS=1 "$py" -m bench diagnose lagging --profile "$lagging_profile" --out "$results/figures" \
    > "$results/figures/lagging.log" 2>&1 &
  lagging_pid=$!
  trap '[ -n "$lagging_pid" ] && kill "$lagging_pid" 2>/dev/null' EXIT
fi
status=0
"$py" -m bench sweep "$experiment" "${sweep_args[@]}" || status=$?
[ "$status" -eq 2 ] && exit 2  # a usage error, already explained in one line
tables="$results/tables/$experiment_name"
"$py" -m bench compare --datasets "$datasets" --results "$results" --profile "$profile" \
  --format table,md,csv,latex --out "$tables" || true
echo "tables (Markdown, CSV, LaTeX): $tables/"
if [ -n "$lagging_pid" ]; then
  echo "waiting for the lagging-encoder diagnostic ($results/figures/lagging.log) ..."
  wait "$lagging_pid" || echo "the lagging-encoder diagnostic failed: see $results/figures/lagging.log"
  lagging_pid=""
  tail -n 20 "$results/figures/lagging.log"
fi
"$py" -m bench report --results "$results" --profile "$profile" || true
[ "$status" -eq 0 ] || echo "some runs failed (see the summary above); ./run_all.sh again retries them"
exit "$status"
