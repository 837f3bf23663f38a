#!/usr/bin/env bash
# Serve the app with sbert-host, like `spin up`. Spin variables pass through from the
# environment unchanged; only when no API key is configured do we make a development key, and only
# when no default model is set do we pick the one that is fastest on this CPU.
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

# The int8 model stays within the accuracy bar of models/README.md everywhere, but pays only with int8 dot-product
# instructions (AVX-512 VNNI or AVX-VNNI): there it serves about twice fp32's throughput (README, Benchmarks); without
# them it gains nothing, so fp32 stays.
if [[ -z "${SPIN_VARIABLE_DEFAULT_MODEL:-}" ]]; then
  if grep -qwE 'avx512_vnni|avx_vnni' /proc/cpuinfo 2>/dev/null; then
    export SPIN_VARIABLE_DEFAULT_MODEL=all-minilm-l6-v2-int8
  else
    export SPIN_VARIABLE_DEFAULT_MODEL=all-minilm-l6-v2
  fi
  echo "Original routes serve $SPIN_VARIABLE_DEFAULT_MODEL, picked for this CPU (set SPIN_VARIABLE_DEFAULT_MODEL to choose)."
fi

exec "${SBERT_HOST:?set by the Makefile}" up --from "${MANIFEST:-spin.toml}" --runtime-config-file runtime-config.toml "$@"
