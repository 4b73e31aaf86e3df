#!/usr/bin/env bash
# pip install with the package indexes pip is configured with: the first
# configured index becomes --index-url and the rest --extra-index-url, so pip
# never waits on an unreachable default index. Arguments go to `pip install`.
#   bash scripts/pip-install.sh --no-deps --target .deps/x some-wheel
set -euo pipefail
PIP=$(command -v pip || command -v pip3)
urls=$($PIP config list 2>/dev/null | sed -n "s/^[a-z:.-]*index-url='\(.*\)'$/\1/p" | tr ' ' '\n' | grep -v '^$' || true)
args=()
first=1
for u in $urls; do
  if [ $first -eq 1 ]; then args+=(--index-url "$u"); first=0; else args+=(--extra-index-url "$u"); fi
done
exec $PIP install -q --disable-pip-version-check "${args[@]}" "$@"
