#!/bin/sh
# make install / make uninstall.
#   scripts/install.sh install PREFIX PYTHON
#   scripts/install.sh uninstall PREFIX
# Installs a private venv under PREFIX/lib/tomato/venv (built from PYTHON, which must be a
# Python every user can run: the system python3, not one under a home directory), the
# commands tomato-vpn tomato-ping tomato-proxy tomato-dlmerge under PREFIX/bin (prefixed,
# so the system's ping is never shadowed), the rule files under PREFIX/share/tomato/rules
# and systemd unit templates under PREFIX/lib/systemd/system.
# Folders the install had to create are listed in PREFIX/lib/tomato/created-dirs;
# uninstall removes those that are empty again, and nothing that was there before.
set -eu
action=$1
prefix=${2:?PREFIX}
python=${3:-/usr/bin/python3}
src=$(cd "$(dirname "$0")/.." && pwd)
tools="vpn ping proxy dlmerge"
venv="$prefix/lib/tomato/venv"
manifest="$prefix/lib/tomato/created-dirs"
units="tomato-vpn@.service tomato-proxy@.service"

# make_dirs DIR...: mkdir -p, remembering (in $created) each folder that did not exist.
created=""
make_dirs() {
    for dir in "$@"; do
        path=$dir
        while [ ! -d "$path" ]; do
            created="$created$path
"
            path=$(dirname "$path")
        done
        mkdir -p "$dir"
    done
}

case $action in
install)
    umask 022  # an install for every user: readable by every user
    base=$("$python" -c 'import os, sys; print(os.path.realpath(sys.base_prefix))') || {
        echo "install.sh: cannot run $python (set SYSTEM_PYTHON=/path/to/python3)" >&2; exit 2; }
    case $base/ in
    /root/* | /home/* | "${HOME:-/nonexistent}"/*)
        echo "install.sh: $python lives in $base, a home directory: other users and units with" \
             "ProtectHome= cannot run it; use the system python3 (make install SYSTEM_PYTHON=/usr/bin/python3)" >&2
        exit 2
        ;;
    esac
    make_dirs "$prefix/bin" "$prefix/lib/tomato" "$prefix/share/tomato/rules" \
              "$prefix/share/tomato/examples" "$prefix/lib/systemd/system"
    { [ -f "$manifest" ] && cat "$manifest"; printf '%s' "$created"; } | sort -u > "$manifest.new"
    mv "$manifest.new" "$manifest"
    "$python" -m venv --clear "$venv"
    "$venv/bin/python" -m pip install -q "$src"
    for t in $tools; do
        ln -sf "$venv/bin/tomato-$t" "$prefix/bin/tomato-$t"
    done
    cp "$src"/rules/*.txt "$prefix/share/tomato/rules/"
    subst="s|@BINDIR@|$prefix/bin|g; s|@DATADIR@|$prefix/share/tomato|g"
    for f in "$src"/contrib/examples/*; do
        sed "$subst" "$f" > "$prefix/share/tomato/examples/$(basename "$f")"
    done
    for u in $units; do
        sed "$subst" "$src/contrib/systemd/$u.in" > "$prefix/lib/systemd/system/$u"
    done
    echo "installed tomato-{vpn,ping,proxy,dlmerge} in $prefix/bin (venv from $python)"
    ;;
uninstall)
    dirs=""
    [ -f "$manifest" ] && dirs=$(sort -r "$manifest")  # deepest first
    for t in $tools; do rm -f "$prefix/bin/tomato-$t"; done
    for u in $units; do rm -f "$prefix/lib/systemd/system/$u"; done
    rm -rf "$prefix/lib/tomato" "$prefix/share/tomato"
    printf '%s\n' "$dirs" | while IFS= read -r dir; do
        [ -n "$dir" ] && rmdir "$dir" 2>/dev/null || true  # only if empty
    done
    echo "removed tomato from $prefix"
    ;;
*)
    echo "usage: $0 install|uninstall PREFIX [PYTHON]" >&2
    exit 2
    ;;
esac
