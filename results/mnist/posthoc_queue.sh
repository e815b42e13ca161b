#!/usr/bin/env bash
# Post-hoc GFlowOut on MC dropout seeds 2 and 3 of the evidence grid, each as soon as its result file lands,
# from commit 4bc3e7f (the commit of seed 1's post-hoc fit):  git worktree add /work/reeval 4bc3e7f --detach
#   nohup nice -n 10 bash results/mnist/posthoc_queue.sh &
# Rerun after a stop: a finished fit (comparison.md written) is skipped, an interrupted one continues (--resume).
set -u
python=/work/main/.venv/bin/python
worktree=/work/reeval
mnist=/work/main/results/mnist
log=$mnist/logs/posthoc.log
for seed in 2 3; do
  run=mnist__mc_dropout__seed$seed
  out=/root/gflowout-runs/mnist-posthoc/$run
  until [ -f "$mnist/results/$run.json" ]; do sleep 300; done   # the grid has finished the source run
  [ -f "$out/comparison.md" ] && continue
  resume=()
  [ -f "$out/checkpoints/last.ckpt" ] && resume=(--resume)
  (cd "$worktree" && PYTHONPATH="$worktree/src" "$python" -m gflowout.cli.main posthoc "$mnist/runs/$run" \
    --out "$out" --epochs 5 --eval-limit 0 --samples 20 "${resume[@]}") >> "$log" 2>&1
  status=$?   # taken first: the $(date) below would reset $?
  echo "$(date -u +%FT%TZ) posthoc $run exited with $status" >> "$log"
  if [ -f "$out/comparison.md" ]; then
    mkdir -p "$mnist/posthoc/$run"
    cp "$out"/{comparison.md,comparison.json,posthoc.json,config.yaml,results.json} "$mnist/posthoc/$run/"
  fi
done
