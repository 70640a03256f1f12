#!/usr/bin/env bash
# Azurite (the Blob Storage emulator) from npm, into opsh's cache; `opsh twin` and the tests start it from there.
set -euo pipefail
prefix=${OPSH_NODE_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/opsh/node}
version=3.35.0
bin="$prefix/node_modules/.bin/azurite-blob"
if [[ -x $bin ]] && [[ $(node -p "require('$prefix/node_modules/azurite/package.json').version" 2>/dev/null) == "$version" ]]; then
  echo "deps: azurite $version present"
  exit 0
fi
mkdir -p "$prefix"
echo "deps: installing azurite $version with npm into $prefix"
npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "azurite@$version" >/dev/null
echo "deps: azurite $version installed"
