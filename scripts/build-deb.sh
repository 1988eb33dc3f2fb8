#!/usr/bin/env bash
# Builds the Debian package target/debian/cefwire_VERSION_ARCH.deb:
#   /usr/bin/cefwire                              the binary (debug info stripped)
#   /lib/systemd/system/cefwire-agent.service     the unit (not enabled: configure first)
#   /etc/cefwire/cefwire.toml                     the example configuration (a conffile, 0640)
#   /usr/share/man/man1/cefwire*.1.gz             man pages   } generated from the binary's own
#   /usr/share/{bash-completion,zsh,fish}/…       completions } command-line definitions
#   /usr/share/doc/cefwire/                       README, copyright
# Depends: the packages that hold the libraries the binary links (found with
# ldd + dpkg -S on the build machine).
#
# Usage: scripts/build-deb.sh            (builds the release binary first)
#        CEFWIRE_BIN=path scripts/build-deb.sh   packages that binary instead
# Prints the package's path on the last line. Needs dpkg-deb, strip, gzip.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
arch=$(dpkg --print-architecture)
if [[ -n ${CEFWIRE_BIN:-} ]]; then
    bin=$CEFWIRE_BIN
else
    cargo build --release --locked --quiet
    bin=target/release/cefwire
fi

stage=$(mktemp -d /tmp/cefwire-deb.XXXXXX)
trap 'rm -rf "$stage"' EXIT
root=$stage/cefwire_${version}_${arch}

install -d -m 0755 "$root/usr/bin" "$root/DEBIAN"
strip --strip-debug -o "$root/usr/bin/cefwire" "$bin"
chmod 0755 "$root/usr/bin/cefwire"

# The unit in contrib/ is written for a manual install into /usr/local/bin.
install -d -m 0755 "$root/lib/systemd/system"
sed 's#/usr/local/bin/cefwire#/usr/bin/cefwire#g' contrib/cefwire-agent.service \
    > "$root/lib/systemd/system/cefwire-agent.service"
chmod 0644 "$root/lib/systemd/system/cefwire-agent.service"
install -D -m 0640 contrib/cefwire.toml "$root/etc/cefwire/cefwire.toml"

man_dir=$root/usr/share/man/man1
"$root/usr/bin/cefwire" manpages "$man_dir"
gzip -9n "$man_dir"/*.1
chmod 0644 "$man_dir"/*.gz

install -d -m 0755 "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
    "$root/usr/share/fish/vendor_completions.d"
"$root/usr/bin/cefwire" completions bash > "$root/usr/share/bash-completion/completions/cefwire"
"$root/usr/bin/cefwire" completions zsh > "$root/usr/share/zsh/vendor-completions/_cefwire"
"$root/usr/bin/cefwire" completions fish > "$root/usr/share/fish/vendor_completions.d/cefwire.fish"

doc=$root/usr/share/doc/cefwire
install -D -m 0644 README.md "$doc/README.md"
cat > "$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: cefwire
License: MIT OR Apache-2.0
EOF

# The packages of the shared libraries the binary links.
depends=$(ldd "$root/usr/bin/cefwire" | awk '/=> \//{print $3}' | while read -r lib; do
    dpkg -S "$(realpath "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true
done | cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g')
[[ -n $depends ]] || { echo "build-deb: could not find the packages of the linked libraries" >&2; exit 1; }

installed_kib=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: cefwire
Version: $version
Architecture: $arch
Maintainer: cefwire maintainers <maintainers@cefwire.invalid>
Installed-Size: $installed_kib
Depends: $depends, adduser
Section: net
Priority: optional
Homepage: https://github.com/cefwire/cefwire
Description: Defender for Cloud Apps events to any SIEM as CEF over syslog
 cefwire pulls alerts and activities from the Microsoft Defender for Cloud
 Apps API (and Graph alerts_v2, the Defender XDR streaming archive, Event
 Hubs) and streams them as CEF over syslog (TCP, UDP, TLS, RELP) without
 losing or duplicating any. It also backfills time windows, converts and
 replays archives, and measures syslog receivers.
 .
 The agent runs as the systemd service cefwire-agent: edit
 /etc/cefwire/cefwire.toml, then systemctl enable --now cefwire-agent.
EOF
echo "/etc/cefwire/cefwire.toml" > "$root/DEBIAN/conffiles"
cat > "$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    # The service's user; its group reads the configuration (and the token file put beside it).
    if ! getent passwd cefwire >/dev/null; then
        adduser --system --group --no-create-home --home /nonexistent --quiet cefwire
    fi
    chgrp cefwire /etc/cefwire /etc/cefwire/cefwire.toml
    chmod 0750 /etc/cefwire
    chmod 0640 /etc/cefwire/cefwire.toml
    # The unit is installed, not enabled: the configuration needs the tenant first.
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || true
    fi
fi
EOF
cat > "$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"

mkdir -p target/debian
deb=target/debian/cefwire_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
