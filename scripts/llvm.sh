#!/usr/bin/env bash
# The LLVM that Burn's CUDA backend is built against: `cargo build --features cuda` compiles
# CubeCL's PTX code generator, which links LLVM statically, and its build script would otherwise
# download a prebuilt LLVM from GitHub. This fetches Debian's own LLVM 22 packages instead
# (llvm-22, llvm-22-dev, libpolly-22-dev from Debian 13; checked by SHA-256), unpacks them
# without installing anything, and lays them out where that build script looks first: a
# folder with its "installed" marker and an `llvm-config`. Run again, it only checks that the
# folder is there.
#
#   eval "$(scripts/llvm.sh)" && cargo build --release --features cuda
#
# Prints the one environment setting the build needs (XDG_DATA_HOME, where the build script
# looks); progress goes to stderr. The folder is $SLSG_LLVM_DIR, by default
# ~/.cache/slsg/llvm-22.1.8. Needs curl, dpkg-deb (or ar and tar), sha256sum and a C compiler, and, to link,
# the system libraries LLVM was built with (zlib, zstd, libxml2, z3: `llvm-config
# --system-libs`); a missing development link (libzstd.so for libzstd.so.1) is made in the
# folder. Debian 13 built LLVM against glibc 2.41, whose headers turn strtol and sscanf into
# their C23 entry points (`__isoc23_strtol`, …, glibc 2.38 and later); where the C library
# lacks them (Debian 12's glibc 2.36) the folder gets them from scripts/isoc23.c, linked after
# LLVM.
set -euo pipefail

VERSION=22.1.8-1~deb13u5
POOL=https://deb.debian.org/debian/pool/main/l/llvm-toolchain-22
# name sha256 (from Debian 13's package index)
PACKAGES=(
  "llvm-22 68ae228f9f761b2bf271eb5cdd7f849c5c9da3284374212875dd731152361b90"
  "llvm-22-dev 14c689347f2402c2f368ca2e52cbf93c920abf48e5fef644395099996ecf3857"
  "libpolly-22-dev cfff9d9660d0888ac28ca792a33ceb94e06d27dfd13839ee82a0daecb8455ff7"
)
# Where tracel-llvm-bundler (the build script) looks: $XDG_DATA_HOME/tracel/<this>.
BUNDLE=tracel-llvm-23.1.0-4

DIR=${SLSG_LLVM_DIR:-$HOME/.cache/slsg/llvm-22.1.8}
PREFIX="$DIR/data/tracel/$BUNDLE"
MARKER="$PREFIX/.tracel-llvm-installed"
# The folder's layout: a folder an earlier version of this script laid out is laid out again
# (from the packages already downloaded).
LAYOUT=2
STAMP="$DIR/layout"

if [ "$(uname -m)" != x86_64 ] || [ "$(uname -s)" != Linux ]; then
  echo "scripts/llvm.sh: Debian's amd64 LLVM packages need x86-64 Linux, not $(uname -sm)" >&2
  exit 1
fi

if [ ! -f "$MARKER" ] || [ "$(cat "$STAMP" 2> /dev/null)" != "$LAYOUT" ]; then
  mkdir -p "$DIR/debs"
  rm -rf "$DIR/root" "$PREFIX"
  for entry in "${PACKAGES[@]}"; do
    read -r name sum <<< "$entry"
    deb="$DIR/debs/${name}_${VERSION}_amd64.deb"
    if ! echo "$sum  $deb" | sha256sum --check --status 2> /dev/null; then
      echo "scripts/llvm.sh: downloading $name $VERSION" >&2
      curl --fail --silent --show-error --location --retry 3 -o "$deb.part" \
        "$POOL/${name}_${VERSION//\~/%7E}_amd64.deb"
      mv "$deb.part" "$deb"
      if ! echo "$sum  $deb" | sha256sum --check --status; then
        echo "scripts/llvm.sh: $deb does not have the SHA-256 Debian lists ($sum)" >&2
        rm -f "$deb"
        exit 1
      fi
    fi
    mkdir -p "$DIR/root"
    if command -v dpkg-deb > /dev/null; then
      dpkg-deb -x "$deb" "$DIR/root"
    else
      (cd "$DIR/root" && ar p "$deb" data.tar.xz | tar -xJ)
    fi
  done
  llvm="$DIR/root/usr/lib/llvm-22"
  "$llvm/bin/llvm-config" --version > /dev/null
  # The build script turns each `llvm-config --system-libs` word into a library name and
  # reads an absolute path (/usr/lib/…/libz3.so) as "libz3": the wrapper names it -lz3.
  # Its one argument is added to the answer to `--system-libs`.
  write_wrapper() {
    mkdir -p "$PREFIX/bin"
    cat > "$PREFIX/bin/llvm-config" << EOF
#!/bin/sh
out=\$("$llvm/bin/llvm-config" "\$@") || exit \$?
case " \$* " in *" --system-libs "*) out="\$out$1" ;; esac
printf '%s\n' "\$out" | sed -E 's#(^| )/[^ ]*/lib([A-Za-z0-9_+-]+)\.so[.0-9]*#\1-l\2#g'
EOF
    chmod +x "$PREFIX/bin/llvm-config"
  }
  write_wrapper ""
  # A system library present only as its runtime file (libzstd.so.1, no libzstd.so) gets the
  # development link beside LLVM's own libraries, which the linker searches.
  for flag in $("$PREFIX/bin/llvm-config" --link-static --system-libs); do
    lib=${flag#-l}
    [ "$lib" != "$flag" ] || continue
    found=$(cc -print-file-name="lib$lib.so")
    if [ "$found" = "lib$lib.so" ] && [ "$(cc -print-file-name="lib$lib.a")" = "lib$lib.a" ]; then
      runtime=$(ldconfig -p | sed -n "s#.*lib$lib\.so\.[0-9.]* ([^)]*x86-64[^)]*) => \(.*\)#\1#p" | head -n 1)
      if [ -z "$runtime" ]; then
        echo "scripts/llvm.sh: LLVM links lib$lib, which this machine lacks (install its package)" >&2
        exit 1
      fi
      ln -sf "$runtime" "$llvm/lib/lib$lib.so"
    fi
  done
  probe="$DIR/isoc23-probe"
  if ! printf '%s\n' 'long __isoc23_strtol(const char *, char **, int);' \
    'int main(void) { return (int)__isoc23_strtol("0", 0, 10); }' |
    cc -x c - -o "$probe" 2> /dev/null; then
    echo "scripts/llvm.sh: this C library lacks the C23 entry points LLVM calls; adding them" >&2
    cc -O2 -std=c11 -Wall -Werror -c "$(dirname "$0")/isoc23.c" -o "$DIR/isoc23.o"
    ar rcs "$llvm/lib/libslsg_isoc23.a" "$DIR/isoc23.o"
    rm -f "$DIR/isoc23.o"
    write_wrapper " -lslsg_isoc23"
  fi
  rm -f "$probe"
  echo "$LAYOUT" > "$STAMP"
  touch "$MARKER"
  echo "scripts/llvm.sh: LLVM $("$PREFIX/bin/llvm-config" --version) ready in $DIR" >&2
fi

printf 'export XDG_DATA_HOME=%q\n' "$DIR/data"
