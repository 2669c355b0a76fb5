#!/usr/bin/env bash
# `npm run package`: builds, from this checkout, into release/
#
#   vmgate_VERSION_ARCH.deb               the Debian package (Debian 12 and later)
#   vmgate-VERSION-linux-ARCH.tar.gz      the same files as a relocatable tree
#
# Both carry their own Node.js runtime (this machine's `node`, stripped) in
# /usr/lib/vmgate: Debian 12's nodejs is 18.x and vmgate needs >= 20.10
# (docs/install.md says why this and not a dependency). Only production npm
# dependencies are shipped. No network is used beyond `npm ci`, which works
# from npm's cache once the checkout's own `npm ci` has run.
#
# Needs: node >= 20.10 and npm, dpkg-deb, dpkg-shlibdeps (dpkg-dev), strip
# (binutils), gzip, tar. VMGATE_NODE picks another node binary to ship;
# VMGATE_NODE_LICENSE its licence file if not found beside it;
# VMGATE_MAINTAINER sets the package's Maintainer field.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/deploy/package

die() { echo "package: $*" >&2; exit 1; }
for tool in dpkg-deb dpkg-shlibdeps dpkg-architecture strip gzip tar npm; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install dpkg-dev binutils)"
done

node_bin=$(readlink -f -- "${VMGATE_NODE:-$(command -v node)}")
"$node_bin" -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<10)) { console.error(`package: ${process.execPath} is Node.js ${process.version}; vmgate needs >= 20.10 (set VMGATE_NODE)`); process.exit(1); }'
version=$(node -p 'require("./package.json").version')
arch=$(dpkg --print-architecture)
maintainer=${VMGATE_MAINTAINER:-vmgate maintainers <vmgate-maintainers@example.org>}
# Reproducible timestamps: the last commit's time, not the clock.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
day=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)
first_year=$(git log --reverse --format=%cd --date=format:%Y 2>/dev/null | sed -n 1p)
last_year=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)
years=${first_year:-$last_year}; [[ $years == "$last_year" ]] || years="$years-$last_year"

echo "package: vmgate $version ($commit) for $arch, Node.js $("$node_bin" --version) from $node_bin"

# --- compile (dev dependencies are needed here, never shipped)
[[ -x node_modules/.bin/tsc ]] || npm ci --no-audit --no-fund --loglevel=error
# From scratch: a dist/ file whose source is gone must not be shipped.
rm -rf dist
npm run --silent build

# --- stage: the package's root file system
release=$root/release
stage=$release/stage
rm -rf "$stage" && mkdir -p "$stage"
lib=$stage/usr/lib/vmgate
doc=$stage/usr/share/doc/vmgate
install -d "$lib/dist" "$stage/usr/bin" "$stage/usr/share/man/man1" "$doc" \
  "$stage/etc/vmgate" "$stage/lib/systemd/system" "$stage/usr/lib/sysusers.d" "$stage/usr/lib/tmpfiles.d"

# Compiled code only: no tests, no bench, no source maps (their sources are not shipped).
(cd dist && find src certs -name '*.js' -exec cp --parents {} "$lib/dist/" \;)
install -m 0644 package.json package-lock.json "$lib/"
(cd "$lib" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error)
rm -f "$lib/package-lock.json" "$lib/node_modules/.package-lock.json"
# Prose and type declarations of the dependencies serve no one at run time;
# their licence files stay (debian/copyright points to them).
find "$lib/node_modules" -type f \( -iname '*.md' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -name '.npmignore' -o -name '.eslintrc*' -o -name '.editorconfig' \) -delete
# Test suites, CI and git metadata and demo pages of the dependencies neither.
find "$lib/node_modules" -type d \( -name test -o -name tests -o -name __tests__ -o -name benchmarks -o -name .husky -o -name .github \) -prune -exec rm -rf {} +
find "$lib/node_modules" -type f \( -name '*.html' -o -name '.git*' -o -name '*.sh' -o -name '.travis.yml' -o -name '.taprc' \) -delete
find "$lib/node_modules" -type d -empty -delete
# Nothing in node_modules is run directly: the runtime is ours.
find "$lib/node_modules" -type f -exec chmod 0644 {} +
find "$lib" -type d -exec chmod 0755 {} +
find "$lib/dist" -type f -exec chmod 0644 {} +

# The runtime, stripped of debug symbols as dh_strip would.
install -m 0755 "$node_bin" "$lib/node"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$lib/node"
[[ $("$lib/node" -p 1+1) == 2 ]] || die "the stripped node binary does not run"

for pair in vmgate:dist/src/cli/main.js vmgate-pki:dist/certs/pki.js; do
  name=${pair%%:*} script=${pair#*:}
  sed -e "s|@NAME@|$name|g" -e "s|@SCRIPT@|$script|g" "$here/wrapper.sh" > "$stage/usr/bin/$name"
  chmod 0755 "$stage/usr/bin/$name"
  [[ $("$stage/usr/bin/$name" --help | head -n1) == "Usage: $name "* ]] || die "$name --help from the staged tree failed"
  "$lib/node" "$here/help2man.mjs" "$name" "$version" "$day" "$lib/$script" > "$stage/usr/share/man/man1/$name.1"
  gzip -9n "$stage/usr/share/man/man1/$name.1"
done
[[ $("$stage/usr/bin/vmgate" --version) == "$version" ]] || die "staged vmgate --version does not print $version"

# System integration.
install -m 0644 deploy/vmgate.service "$stage/lib/systemd/system/vmgate.service"
install -m 0644 "$here/sysusers.conf" "$stage/usr/lib/sysusers.d/vmgate.conf"
install -m 0644 "$here/tmpfiles.conf" "$stage/usr/lib/tmpfiles.d/vmgate.conf"
install -D -m 0644 "$here/lintian-overrides" "$stage/usr/share/lintian/overrides/vmgate"
install -m 0644 deploy/host-a.yaml "$stage/etc/vmgate/vmgate.yaml"

# Documentation, in the repository's layout so the links between files still work.
for f in README.md SECURITY.md docs/*.md docs/*/*.md deploy/README.md deploy/host-a.yaml deploy/host-b.yaml certs/README.md; do
  install -D -m 0644 "$f" "$doc/$f"
done
# Node.js's licence (MIT, plus the notices of what it bundles) goes with its binary.
node_license=${VMGATE_NODE_LICENSE:-}
if [[ -z $node_license ]]; then
  # An official tarball (or nvm) has it at the top of its tree; NodeSource and Debian in /usr/share/doc.
  for f in "$(dirname "$node_bin")/../LICENSE" /usr/share/doc/nodejs/LICENSE /usr/share/doc/nodejs/copyright; do
    [[ -f $f ]] && { node_license=$f; break; }
  done
fi
[[ -n $node_license && -f $node_license ]] || die "cannot find the LICENSE of $node_bin (set VMGATE_NODE_LICENSE)"
install -D -m 0644 "$node_license" "$doc/node/LICENSE"
"$lib/node" "$here/copyright.mjs" "$lib/node_modules" "$("$lib/node" --version)" "$years" > "$doc/copyright"
cat > "$doc/changelog" <<EOF
vmgate ($version) unstable; urgency=medium

  * Release $version, built from git commit $commit.

 -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
EOF
gzip -9n "$doc/changelog"

# --- the Debian package
install -d -m 0755 "$stage/DEBIAN"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$stage/DEBIAN/"
echo /etc/vmgate/vmgate.yaml > "$stage/DEBIAN/conffiles"
# Shared-library dependencies of the shipped node, as dh_shlibdeps finds them.
shlibs_dir=$(mktemp -d)
trap 'rm -rf "$shlibs_dir"' EXIT
mkdir "$shlibs_dir/debian"
printf 'Source: vmgate\n\nPackage: vmgate\nArchitecture: any\n' > "$shlibs_dir/debian/control"
shlibs=$(cd "$shlibs_dir" && dpkg-shlibdeps --warnings=1 -O "$lib/node" | sed -n 's/^shlibs:Depends=//p')
[[ -n $shlibs ]] || die "dpkg-shlibdeps found no dependencies for $lib/node"
installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<EOF
Package: vmgate
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $shlibs, adduser
Suggests: qemu-system-x86
Section: net
Priority: optional
Description: gateways for QEMU live migration over TLS 1.3 and SASL
 vmgate runs one gateway daemon per hypervisor host. QEMU talks plain TCP or
 a unix socket to its local gateway only; the gateways carry the migration
 stream between hosts over mutually authenticated TLS 1.3 plus a SASL login,
 with coded errors on both ends, instant cancel and Prometheus metrics.
 .
 This package ships its own Node.js runtime in /usr/lib/vmgate, the vmgate
 and vmgate-pki commands, and the vmgate.service systemd unit.
EOF
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

deb=$release/vmgate_${version}_${arch}.deb
rm -f "$deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null

# --- the release tarball: usr/ of the same tree under one top directory (run
# bin/vmgate in place), with the system files in share/vmgate/system/.
name=vmgate-$version-linux-$arch
tree=$release/$name
rm -rf "$tree" && mkdir -p "$tree/share/vmgate/system"
cp -a "$stage/usr/." "$tree/"
cp -a "$stage/lib/systemd/system/vmgate.service" "$stage/etc/vmgate/vmgate.yaml" "$tree/share/vmgate/system/"
cp -a "$stage/usr/lib/sysusers.d/vmgate.conf" "$tree/share/vmgate/system/sysusers-vmgate.conf"
cp -a "$stage/usr/lib/tmpfiles.d/vmgate.conf" "$tree/share/vmgate/system/tmpfiles-vmgate.conf"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
  -C "$release" -czf "$release/$name.tar.gz" "$name"
rm -rf "$tree" "$stage"

echo "package: wrote"
ls -l "$deb" "$release/$name.tar.gz" | awk '{print "  " $NF "  " $5 " bytes"}'
