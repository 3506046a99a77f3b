#!/usr/bin/env bash
# The main job: set up (once), then train and evaluate each method on each dataset and
# seed, then print where the records are. Finished runs are never redone; an interrupted
# run resumes from its last epoch.
#
#   ./run_all.sh [--profile cpu|paper|smoke] [--datasets A,B] [--methods A,B] [--seeds 0,1]
#                [--data-dir DIR] [--out DIR]
#
# Defaults: the `paper` profile when an NVIDIA GPU is present, else `cpu`; datasets
# yahoo_resplit and yelp_xu_resplit from the data directory ($BENCH_DATA_DIR or --data-dir),
# or the built-in synthetic data when there is no data directory.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
profile="" datasets="" methods="vae,lm" seeds="0" out="$root/results" data_dir="${BENCH_DATA_DIR:-}"
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --datasets) datasets="$2"; shift 2 ;;
    --methods) methods="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --data-dir) data_dir="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option '$1' (see ./run_all.sh --help)" >&2; exit 2 ;;
  esac
done
"$root/scripts/setup_env.sh"
py="$root/.venv/bin/python"
if [ -z "$profile" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then profile=paper; else profile=cpu; fi
  echo "hardware: $( [ "$profile" = paper ] && echo 'NVIDIA GPU found' || echo 'no GPU' ) -> profile '$profile'"
fi
if [ -z "$datasets" ]; then
  if [ -n "$data_dir" ]; then
    datasets="yahoo_resplit,yelp_xu_resplit"
  else
    datasets="synthetic"
    echo "no data directory (set BENCH_DATA_DIR or pass --data-dir): running on the built-in synthetic data only;"
    echo "  yahoo/yelp results need their folders under a data directory (python -m bench.data list)"
  fi
fi
[ -n "$data_dir" ] && export BENCH_DATA_DIR="$(cd "$data_dir" && pwd)"
cd "$root"
started=$(date +%s)
IFS=, read -ra dataset_list <<< "$datasets"
IFS=, read -ra method_list <<< "$methods"
IFS=, read -ra seed_list <<< "$seeds"
for dataset in "${dataset_list[@]}"; do
  for method in "${method_list[@]}"; do
    for seed in "${seed_list[@]}"; do
      echo "== $method on $dataset, seed $seed, profile $profile"
      "$py" -m bench.train --method "$method" --dataset "$dataset" --profile "$profile" --seed "$seed" --out "$out"
    done
  done
done
echo "done in $(( $(date +%s) - started )) s; records under $out/$profile/"
