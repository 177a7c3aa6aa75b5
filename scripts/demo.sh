#!/usr/bin/env bash
# The main job: installs dependencies, builds, and runs the code-review example workflow on
# the embedded store. Offline it uses the scripted provider; with OPENAI_API_KEY set (and
# optionally OPENAI_BASE_URL / STROWGER_DEMO_MODEL) it uses a real model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release strowger >/dev/null
bin=build/release/src/app/strowger

model_flag=(--model scripted:examples/scripted/code-review.yaml)
if [ -n "${OPENAI_API_KEY:-}" ]; then
  model_flag=(--model "${STROWGER_DEMO_MODEL:-openai:gpt-4o-mini}")
  echo "demo: using ${model_flag[1]} at ${OPENAI_BASE_URL:-https://api.openai.com/v1}" >&2
else
  echo "demo: no OPENAI_API_KEY set, using the scripted provider (examples/scripted/code-review.yaml)" >&2
fi

"$bin" validate examples/code-review.json
"$bin" run examples/code-review.json --input-file examples/inputs/user_lookup.c \
  --progress always "${model_flag[@]}" "$@"
