#!/usr/bin/env bash
# One worker's share of the evidence runs, in order: the MNIST grid, the beta = 1 ablation, the grid's
# deep-ensemble row (all from commit e598adc), then the Fashion-MNIST grid (from the commit in FASHION_WORKTREE).
# Two workers share the machine:  for i in 1 2; do nohup nice -n 10 bash results/mnist/evidence_queue.sh $i & done
# Rerun the same loop after a stop: finished runs are skipped, an interrupted training resumes from its last.ckpt.
# Reports are not written here (--no-report): the current main writes them with `gflowout report` (COMMANDS.md).
set -u
shard=${1:?usage: evidence_queue.sh SHARD (1 or 2)}
python=/work/main/.venv/bin/python
results=/work/main/results
MNIST_WORKTREE=/work/evidence2 MNIST_COMMIT=e598adc
FASHION_WORKTREE=/work/evidence3 FASHION_COMMIT=8a234cf     # why these commits: COMMANDS.md

# On a fresh machine (run folders, worktrees and data gone; `make install` done): the worktrees and the data sets
# come back first, one worker at a time; run folders that did not survive restart their runs from the beginning
# (finished runs are skipped all the same: their result files are committed).
(  # chained with &&: `set -e` does nothing in a subshell on the left of ||
  flock 9 &&
    git -C /work/main worktree prune &&
    { [ -d "$MNIST_WORKTREE" ] || git -C /work/main worktree add "$MNIST_WORKTREE" "$MNIST_COMMIT" --detach; } &&
    { [ -d "$FASHION_WORKTREE" ] || git -C /work/main worktree add "$FASHION_WORKTREE" "$FASHION_COMMIT" --detach; } &&
    "$python" -m gflowout.cli.main data fetch mnist fashion-mnist animal-mnist
) 9> /tmp/gflowout-evidence-queue.lock > /dev/null 2>&1 || { echo "set-up failed (worktrees, data)" >&2; exit 1; }

bench() {  # worktree, grid config (relative to the worktree), output folder
  local out=$3 name status
  name=$(basename "$out")
  mkdir -p "$out/logs" "/root/gflowout-runs/$name"
  [ -e "$out/runs" ] || ln -s "/root/gflowout-runs/$name" "$out/runs"   # checkpoints off the work tree
  (cd "$1" && PYTHONPATH="$1/src" "$python" -m gflowout.cli.main benchmark --config "$2" --out "$out" \
    --shard "$shard/2" --no-report) >> "$out/logs/shard$shard.log" 2>&1
  status=$?   # taken first: the $(date) below would reset $?
  echo "$(date -u +%FT%TZ) $2 shard $shard/2 exited with $status" >> "$results/mnist/logs/queue$shard.log"
}

bench "$MNIST_WORKTREE" configs/evidence_mnist.yaml "$results/mnist"
bench "$MNIST_WORKTREE" configs/evidence_mnist_beta1.yaml "$results/mnist-beta1"
bench "$MNIST_WORKTREE" configs/evidence_mnist_ensemble.yaml "$results/mnist"
bench "$FASHION_WORKTREE" configs/evidence_fashion_mnist.yaml "$results/fashion-mnist"
