#!/usr/bin/env bash
# The end-to-end upload benchmark in one command: installs the Python peer (flowjs 0.1.1 and
# Tornado, in bench/.venv) and nginx with the WebDAV module (Debian's nginx-light, when missing),
# builds the example server (release) and the load generator, and runs the load generator with
# this script's arguments.
#
#   bench/run.sh                 # full run: 1 GiB, 1 MiB chunks, 3 in flight, every scenario
#   bench/run.sh --quick         # smoke run: 64 MiB
#   bench/run.sh --scenarios chunked,memory --repeat 3
#   bench/run.sh --help          # every flag of the load generator
#
# The example server is built into $CARGO_TARGET_DIR (default: the repository's target/); the
# load generator into bench/loadgen/target. Scratch files go to bench/out and are removed after
# the run (pass --keep to keep them).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="$here/.venv"

say() { printf 'run.sh: %s\n' "$*" >&2; }

# --- 1. The Python peer ------------------------------------------------------------------------
peer_ok() { "$1" -c 'import flowjs, flowjs.requests, tornado' 2>/dev/null; }

python_bin=""
if [ -x "$venv/bin/python" ] && peer_ok "$venv/bin/python"; then
    python_bin="$venv/bin/python"
else
    if [ ! -x "$venv/bin/python" ]; then
        say "creating $venv"
        if ! python3 -m venv "$venv" 2>/dev/null; then
            rm -rf "$venv"
            # Debian's python3 needs python3-venv for `python3 -m venv`.
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                say "python3 -m venv failed; installing python3-venv"
                apt-get install -y python3-venv >/dev/null 2>&1 \
                    || { apt-get update >/dev/null && apt-get install -y python3-venv >/dev/null; }
                python3 -m venv "$venv"
            fi
        fi
    fi
    if [ -x "$venv/bin/python" ]; then
        say "installing flowjs==0.1.1 and tornado into $venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "flowjs==0.1.1" tornado
        python_bin="$venv/bin/python"
    else
        say "no venv; installing flowjs==0.1.1 and tornado into the user site"
        python3 -m pip install --quiet --user --disable-pip-version-check "flowjs==0.1.1" tornado
        python_bin="$(command -v python3)"
    fi
    peer_ok "$python_bin" || { say "flowjs/tornado still not importable by $python_bin"; exit 2; }
fi
# The load generator runs `python3` from PATH unless told otherwise.
export PATH="$(dirname "$python_bin"):$PATH"
if [ ! -e "$(dirname "$python_bin")/python3" ]; then
    set -- --python "$python_bin" "$@"
fi

# --- 2. nginx with the WebDAV module (the floor of the throughput bar) --------------------------
# Debian's nginx-light is built --with-http_dav_module. Installed when missing (as root, with
# apt-get); without it the nginx scenario reports NOT RUN and the others still run.
nginx_given=false
for arg in "$@"; do
    case "$arg" in --nginx|--nginx=*) nginx_given=true ;; esac
done
nginx_has_dav() { "$1" -V 2>&1 | grep -q -- '--with-http_dav_module'; }
if ! $nginx_given; then
    nginx_bin="$(command -v nginx || true)"
    [ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx
    if [ -z "$nginx_bin" ] || ! nginx_has_dav "$nginx_bin"; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            say "installing nginx-light (nginx with the WebDAV module)"
            # loadgen runs its own nginx (own prefix and config, a free loopback port); a
            # service the package may start is not used.
            DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light >/dev/null 2>&1 \
                || { apt-get update >/dev/null \
                     && DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light >/dev/null; } \
                || say "could not install nginx-light; the nginx scenario will not run"
            nginx_bin="$(command -v nginx || true)"
            [ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx
        else
            say "nginx with the WebDAV module is missing (apt-get install nginx-light as root)"
        fi
    fi
    if [ -n "$nginx_bin" ]; then
        set -- --nginx "$nginx_bin" "$@"
    fi
fi

# --- 3. The example server (release) -----------------------------------------------------------
server_given=false
for arg in "$@"; do
    case "$arg" in --server|--server=*) server_given=true ;; esac
done
if ! $server_given; then
    target="${CARGO_TARGET_DIR:-$repo/target}"
    say "building the example server (release) into $target"
    CARGO_TARGET_DIR="$target" cargo build --quiet --release --example server --features axum,s3 \
        --manifest-path "$repo/Cargo.toml"
    set -- --server "$target/release/examples/server" "$@"
fi

# --- 4. The load generator ---------------------------------------------------------------------
say "building the load generator"
env -u CARGO_TARGET_DIR cargo build --quiet --release \
    --manifest-path "$here/loadgen/Cargo.toml" --target-dir "$here/loadgen/target"

# --- 5. Run -------------------------------------------------------------------------------------
exec "$here/loadgen/target/release/loadgen" "$@"
