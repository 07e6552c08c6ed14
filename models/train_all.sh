#!/usr/bin/env bash
# Trains the three 2-bar models one after another, resuming from their
# checkpoints, so a later session can run it again to train further
# (raise STEPS; PARTS picks which, in order). Logs: models/work/logs/<part>.log
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-5000}
THREADS=${THREADS:-2}
PARTS=${PARTS:-drums bass melody}
mkdir -p models/work/logs
for part in $PARTS; do
  PYTHONPATH=models python3 -m latent_trio_models.train --part "$part" --steps "$STEPS" \
    --threads "$THREADS" --resume >> "models/work/logs/$part.log" 2>&1
done
