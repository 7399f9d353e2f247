#!/usr/bin/env bash
# The lab extension's wire types (jupyter_ext/src/schema.d.ts) must be generated from the
# server's current OpenAPI document; `npm run api-types` regenerates them.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
himalia openapi > "$scratch/openapi.json"
npx --no-install openapi-typescript "$scratch/openapi.json" --default-non-nullable false --output "$scratch/schema.d.ts" >/dev/null 2>&1
npx --no-install prettier --stdin-filepath jupyter_ext/src/schema.d.ts < "$scratch/schema.d.ts" > "$scratch/formatted.d.ts"
if ! diff -q "$scratch/formatted.d.ts" jupyter_ext/src/schema.d.ts >/dev/null; then
    echo "jupyter_ext/src/schema.d.ts is out of date with the REST API: run 'npm run api-types'." >&2
    exit 1
fi
