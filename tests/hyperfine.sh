#!/usr/bin/env bash
# Times `credd get` against /bin/true and against the Python path (boto3) with hyperfine, in an
# isolated HOME with its own daemon, so anyone can reproduce BENCHMARKS.md's latency figures
# with public tools. Needs the release binaries (tests/bench.sh builds them), hyperfine
# (Debian's package) and the test peers' Python (the README's test command installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "install hyperfine (apt-get install hyperfine)" >&2; exit 2; }

client="${CREDD_CLIENT_BIN:-$PWD/target/client/credd}"
[ -x "$client" ] || client="$PWD/target/release/credd"
python="$PWD/target/peers/venv/bin/python"
work=$(mktemp -d)
trap 'CREDD_SOCKET="$work/credd.sock" "$client" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

export HOME="$work" CREDD_SOCKET="$work/credd.sock" CREDD_CONFIG="$work/config.toml"
export PATH="$PWD/target/release:$PATH"
printf '#!/bin/sh\necho tok-hyperfine\n' > "$work/token.sh"
cat > "$work/aws.sh" <<'SH'
#!/bin/sh
echo '{"Version":1,"AccessKeyId":"ASIAHYPERFINE","SecretAccessKey":"s","SessionToken":"t","Expiration":"2099-01-01T00:00:00Z"}'
SH
chmod +x "$work/token.sh" "$work/aws.sh"
cat > "$CREDD_CONFIG" <<TOML
[sources.gateway]
kind = "exec"
command = ["$work/token.sh"]
ttl = "12h"

[sources.dev]
kind = "exec"
command = ["$work/aws.sh"]
TOML
mkdir -p "$work/.aws"
printf '[profile bench]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = secret\nregion = us-east-1\n' > "$work/.aws/config"
"$client" get gateway >/dev/null
"$client" get dev --format aws >/dev/null

hyperfine -N --warmup 50 --runs 500 --export-markdown "$work/exec.md" \
    '/bin/true' "$client get gateway" "$client get dev --format aws"
hyperfine -N --warmup 3 --runs 30 --export-markdown "$work/python.md" \
    "$client get dev --format aws" \
    "$python -c \"import boto3; c = boto3.Session(profile_name='bench').get_credentials().get_frozen_credentials(); print(c.access_key, c.secret_key, c.token)\""
cat "$work/exec.md" "$work/python.md"
