#!/usr/bin/env bash
# Runs credd's whole test suite on a fresh machine.
#
# Installs the peers the end-to-end tests run against into target/peers (Claude Code from npm),
# builds the binaries, and runs every test in the workspace. Nothing outside the checkout is
# touched except Debian packages (Node.js and npm, when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

CLAUDE_CODE_VERSION=2.1.197
PEERS="$PWD/target/peers"

step() { printf '\n==> %s\n' "$*"; }

if ! command -v npm >/dev/null 2>&1; then
    step "installing Node.js and npm (Debian packages)"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq nodejs npm
fi

claude="$PEERS/node_modules/.bin/claude"
if ! "$claude" --version 2>/dev/null | grep -q "^$CLAUDE_CODE_VERSION"; then
    step "installing Claude Code $CLAUDE_CODE_VERSION from npm into $PEERS"
    mkdir -p "$PEERS"
    [ -f "$PEERS/package.json" ] || echo '{"private": true}' > "$PEERS/package.json"
    npm install --prefix "$PEERS" --no-audit --no-fund --loglevel=error \
        "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION"
    # The package's postinstall puts the native binary in place; run it if npm skipped it.
    if ! "$claude" --version >/dev/null 2>&1; then
        (cd "$PEERS/node_modules/@anthropic-ai/claude-code" && node install.cjs)
    fi
    "$claude" --version
fi
export CREDD_CLAUDE_BIN="$claude"

step "building credd and credd-daemon"
cargo build --locked --workspace --bins

step "running the tests"
cargo test --locked --workspace
