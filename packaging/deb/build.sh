#!/bin/sh
# Builds callvault_<version>_<arch>.deb from a release binary, with dpkg-deb alone (no
# cargo-deb needed): the binary, both systemd units, the sysusers and tmpfiles entries, the
# example configurations as conffiles, and the README.
#
#   packaging/deb/build.sh [BINARY] [OUT_DIR]     (default target/release/callvault, target/deb)
#
# Installing it creates the callvault user and its directories (systemd-sysusers and
# systemd-tmpfiles) but enables and starts nothing: the number lists, the catalogue key and
# the token must be in place first (README, "Running the agent").
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
binary=${1:-$root/target/release/callvault}
out=${2:-$root/target/deb}

[ -x "$binary" ] || { echo "build.sh: $binary: no such executable (cargo build --release first)" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
arch=$(dpkg --print-architecture)
# the newest glibc symbol version the binary needs
glibc=$(objdump -T "$binary" 2>/dev/null | sed -n 's/.*GLIBC_\([0-9.]*\).*/\1/p' | sort -V | tail -n 1)
glibc=${glibc:-2.34}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/callvault
install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/lib/systemd/system" \
    "$pkg/usr/lib/sysusers.d" "$pkg/usr/lib/tmpfiles.d" "$pkg/etc/callvault" \
    "$pkg/usr/share/doc/callvault"
install -m 0755 "$binary" "$pkg/usr/bin/callvault"
strip --strip-debug "$pkg/usr/bin/callvault" 2>/dev/null || true
install -m 0644 "$root/systemd/callvault-agent.service" "$root/systemd/callvault-catalogue.service" \
    "$pkg/usr/lib/systemd/system/"
install -m 0644 "$root/systemd/callvault.sysusers.conf" "$pkg/usr/lib/sysusers.d/callvault.conf"
install -m 0644 "$root/systemd/callvault.tmpfiles.conf" "$pkg/usr/lib/tmpfiles.d/callvault.conf"
# the configurations name the contact centre's numbers: readable by root and callvault only
# (the group is set by postinst, once the user exists)
install -m 0640 "$root/config/agent.toml" "$root/config/catalogue.toml" "$pkg/etc/callvault/"
install -m 0644 "$root/README.md" "$pkg/usr/share/doc/callvault/README.md"
gzip -9n "$pkg/usr/share/doc/callvault/README.md"
cat > "$pkg/usr/share/doc/callvault/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: callvault

Files: *
License: Apache-2.0
 On Debian systems the full text of the license is in /usr/share/common-licenses/Apache-2.0.
EOF

installed_kb=$(du -sk "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<EOF
Package: callvault
Version: $version
Architecture: $arch
Maintainer: callvault developers <callvault@localhost>
Installed-Size: $installed_kb
Depends: libc6 (>= $glibc)
Recommends: systemd
Section: net
Priority: optional
Homepage: https://github.com/callvault/callvault
Description: passive, scope-limited, encrypted contact-centre call recorder
 callvault records the calls of configured contact-centre numbers from a mirror
 port or a HEP feed, never calls direct-dialled to staff or internal calls,
 follows them through transfers, and writes stereo WAV segments encrypted at rest
 (AES-256-GCM, keys sealed to the catalogue). The catalogue stores and indexes
 them; managers retrieve a recording for a stated purpose, every access is
 audited, and recordings expire after their retention period.
 .
 This package holds both programs (callvault agent, callvault catalogue) and
 their systemd units; neither is enabled on installation.
EOF
printf '/etc/callvault/agent.toml\n/etc/callvault/catalogue.toml\n' > "$pkg/DEBIAN/conffiles"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$pkg/DEBIAN/"
(cd "$pkg" && find usr etc -type f ! -path 'etc/*' -exec md5sum {} + | sort -k 2 > DEBIAN/md5sums)

mkdir -p "$out"
deb="$out/callvault_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
