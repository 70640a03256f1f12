#!/usr/bin/env bash
# Install the Debian packages in deploy/packages.txt that are missing (apt-get, as root or via sudo).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
missing=()
while read -r pkg extra; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  if [[ ${extra:-} == command=* ]] && command -v "${extra#command=}" >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < "$here/packages.txt"
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "deps: all Debian packages present"
if [[ -x "$here/npm-deps.sh" ]]; then "$here/npm-deps.sh"; fi
