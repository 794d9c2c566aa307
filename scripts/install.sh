#!/bin/sh
# make install / make uninstall.
#   scripts/install.sh install PREFIX PYTHON
#   scripts/install.sh uninstall PREFIX
# Installs a private venv under PREFIX/lib/tomato/venv, the commands
# tomato-vpn tomato-ping tomato-proxy tomato-dlmerge under PREFIX/bin (prefixed,
# so the system's ping is never shadowed), the rule files under
# PREFIX/share/tomato/rules and systemd unit templates under
# PREFIX/lib/systemd/system.
set -eu
action=$1
prefix=${2:?PREFIX}
python=${3:-python3}
src=$(cd "$(dirname "$0")/.." && pwd)
tools="vpn ping proxy dlmerge"
venv="$prefix/lib/tomato/venv"
units="tomato-vpn@.service tomato-proxy@.service"

case $action in
install)
    mkdir -p "$prefix/bin" "$prefix/lib/tomato" "$prefix/share/tomato/rules" \
             "$prefix/share/tomato/examples" "$prefix/lib/systemd/system"
    "$python" -m venv "$venv"
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
    echo "installed tomato-{vpn,ping,proxy,dlmerge} in $prefix/bin"
    ;;
uninstall)
    for t in $tools; do rm -f "$prefix/bin/tomato-$t"; done
    for u in $units; do rm -f "$prefix/lib/systemd/system/$u"; done
    rm -rf "$prefix/lib/tomato" "$prefix/share/tomato"
    echo "removed tomato from $prefix"
    ;;
*)
    echo "usage: $0 install|uninstall PREFIX [PYTHON]" >&2
    exit 2
    ;;
esac
