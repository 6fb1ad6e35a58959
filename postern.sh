#!/usr/bin/env bash
# Runs Postern from this checkout: `./postern.sh serve` starts the gateway with the embedded
# default (SQLite queue under ./postern-data, listeners on 127.0.0.1:2525 and :2587).
# Any other arguments go to the postern command (queue, config, ...).
set -euo pipefail
root=$(cd "$(dirname "$0")" && pwd)
dll=$root/src/Postern/bin/Release/net10.0/postern.dll
if [ ! -f "$dll" ] || [ -n "$(find "$root/src" -name '*.cs' -newer "$dll" -print -quit)" ]; then
  dotnet build "$root/src/Postern/Postern.csproj" -c Release -nologo -v quiet >&2
fi
exec dotnet "$dll" "$@"
