#!/usr/bin/env bash
# Serve the app with sbert-host, like `spin up`. Spin variables pass through from the
# environment unchanged; only when no API key is configured do we make a development key.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${SPIN_VARIABLE_API_KEYS:-}" ]]; then
  key_file=.spin/dev-api-key
  if [[ ! -s $key_file ]]; then
    mkdir -p .spin
    umask 077
    echo "sk-dev-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$key_file"
  fi
  export SPIN_VARIABLE_API_KEYS
  SPIN_VARIABLE_API_KEYS=$(cat "$key_file")
  echo "No SPIN_VARIABLE_API_KEYS set: using the development API key from $key_file:"
  echo
  echo "    $SPIN_VARIABLE_API_KEYS"
  echo
  echo "Try: curl -H \"Authorization: Bearer $SPIN_VARIABLE_API_KEYS\" \"http://${LISTEN:-127.0.0.1:3000}/v1/encode?query=hello%20world\""
  echo
fi

# Every route serves the exact fp32 model unless the operator opts in to int8 (README, "Models"): answers must
# not change with the CPU a replica happens to run on.
if [[ -z "${SPIN_VARIABLE_DEFAULT_MODEL:-}" ]]; then
  echo "Original routes serve the exact model (all-minilm-l6-v2); SPIN_VARIABLE_DEFAULT_MODEL=all-minilm-l6-v2-int8 opts in to int8."
fi

exec "${SBERT_HOST:?set by the Makefile}" up --from "${MANIFEST:-spin.toml}" --runtime-config-file runtime-config.toml "$@"
