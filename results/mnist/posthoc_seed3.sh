#!/usr/bin/env bash
# MC dropout seed 3 of the evidence grid retrained (e598adc, one thread, training only; resumes), checked against the
# committed validation curve bit for bit, then post-hoc GFlowOut on it (4bc3e7f, as seeds 1 and 2). nice 19: the
# deep ensemble (nice 10, two threads) keeps priority.
set -u
python=/work/main/.venv/bin/python
mnist=/work/main/results/mnist
log=$mnist/logs/posthoc3.log
run=/root/gflowout-runs/mnist-retrain/mnist__mc_dropout__seed3
out=/root/gflowout-runs/mnist-posthoc/mnist__mc_dropout__seed3
echo "$(date -u +%FT%TZ) retrain start" >> "$log"
(cd /work/evidence2 && PYTHONPATH=/work/evidence2/src "$python" /work/main/results/mnist/retrain_mc_dropout_seed3.py) >> "$log" 2>&1
status=$?
echo "$(date -u +%FT%TZ) retrain exited with $status" >> "$log"
[ $status -eq 0 ] || exit $status
[ -f "$out/comparison.md" ] && exit 0
resume=()
[ -f "$out/checkpoints/last.ckpt" ] && resume=(--resume)
(cd /work/reeval && PYTHONPATH=/work/reeval/src "$python" -m gflowout.cli.main posthoc "$run" \
  --out "$out" --epochs 5 --eval-limit 0 --samples 20 "${resume[@]}") >> "$log" 2>&1
status=$?
echo "$(date -u +%FT%TZ) posthoc exited with $status" >> "$log"
if [ -f "$out/comparison.md" ]; then
  mkdir -p "$mnist/posthoc/mnist__mc_dropout__seed3"
  cp "$out"/{comparison.md,comparison.json,posthoc.json,config.yaml,results.json} "$mnist/posthoc/mnist__mc_dropout__seed3/"
fi
