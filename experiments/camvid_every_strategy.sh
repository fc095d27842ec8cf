#!/usr/bin/env bash
# Every strategy that applies to segmentation on configs/camvid.py:runlocal, one run each:
# prints the wall time and each round's test mIoU (experiments/README.md records a run).
#
#   JAL_DATA_DIR=../shared/data bash experiments/camvid_every_strategy.sh [OUT] [STRATEGY ...]
set -uo pipefail
out=${1:-runs/camvid_every_strategy}
shift || true
names=("$@")
mkdir -p "$out"
if [ ${#names[@]} -eq 0 ]; then
  names=(random entropy least_confidence margin bald dbal coreset learning_loss vaal tavaal mal pal)
fi
for s in "${names[@]}"; do
  start=$(date +%s)
  python -m jal.main --config configs/camvid.py:runlocal --workdir "$out/$s" --overwrite \
      --config.strategy.name="$s" > "$out.$s.log" 2>&1
  rc=$?
  echo "$s: exit $rc, $(( $(date +%s) - start )) s; $(grep -E '^round' "$out.$s.log" \
      | sed -E 's/.*: ([0-9]+) labeled, test mIoU ([0-9.]+).*/\1: \2/' | tr '\n' ' ')"
done
