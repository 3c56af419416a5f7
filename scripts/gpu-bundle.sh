#!/usr/bin/env bash
# make gpu-bundle: builds, on a CPU machine, what a GPU machine without network, Swift or compiler
# runs: medseg (Swift runtime linked statically) and the test runner for the CUDA engine, against
# PyPI's torch (MEDSEG_TORCH_VERSION, default 2.11.0, CUDA 13), and packs them with the libraries
# they need that neither torch's wheels nor the base system provide (found with ldd), the tests'
# resources and the launcher (scripts/gpu-bundle/medseg-gpu) into .gpu-bundle/medseg-gpu-bundle.tar.xz
# (at most 60 MiB). The GPU machine's own torch supplies libtorch, CUDA, cuDNN and NCCL.
# Usage: bash scripts/gpu-bundle.sh [OUT_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${1:-$root/.gpu-bundle}"
limit_mib=60
torch_root="$root/.deps/torch-cuda"
say() { echo "gpu-bundle: $*"; }
die() { echo "gpu-bundle: error: $*" >&2; exit 1; }

bash scripts/torch-cuda.sh "$torch_root"
export LIBTORCH="$torch_root/torch" MEDSEG_RELOCATABLE=1
jobs=$(nproc)
say "building medseg (release, static Swift runtime) against $(sed -n 's/^__version__ = .\(.*\).$/\1/p' "$LIBTORCH/version.py")"
swift build --build-path .build-gpu-bundle -c release --static-swift-stdlib --product medseg -j "$jobs"
say "building the test runner (release, testable)"
swift build --build-path .build-gpu-tests -c release --build-tests -Xswiftc -enable-testing -j "$jobs"

stage_parent=$(mktemp -d)
trap 'rm -rf "$stage_parent"' EXIT
stage="$stage_parent/medseg-gpu-bundle"
mkdir -p "$stage/bin" "$stage/lib/swift" "$stage/lib/compat"
cp .build-gpu-bundle/release/medseg "$stage/bin/"
cp .build-gpu-tests/release/MedSegPackageTests.xctest "$stage/bin/"
for r in .build-gpu-tests/release/*.resources; do cp -r "$r" "$stage/bin/"; done
strip --strip-unneeded "$stage/bin/medseg" "$stage/bin/MedSegPackageTests.xctest"
cp scripts/gpu-bundle/medseg-gpu "$stage/"

# Every shared library the two binaries load, sorted into: torch's wheels (the GPU machine's own),
# the base system (C library, loader, libgcc), the Swift runtime (test runner only: XCTest exists
# only as a shared library), libstdc++ (in lib/compat: the launcher uses it only where the
# machine's own is older than the binaries need, since it may need a newer glibc) and the rest,
# which the bundle carries (image codecs).
swift_lib=$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")/lib/swift/linux
torch_libs="$LIBTORCH/lib"
for d in "$torch_root"/nvidia/*/lib; do torch_libs="$torch_libs:$d"; done
base='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libutil|libresolv|libgcc_s)\.so'
for binary in "$stage/bin/medseg" "$stage/bin/MedSegPackageTests.xctest"; do
  LD_LIBRARY_PATH="$torch_libs:$swift_lib" ldd "$binary" | while read -r name _ path _; do
    [ "$name" = "not" ] && continue
    if [ "$path" = "not" ] || [ "$path" = "" ]; then
      [[ "$name" =~ ^(linux-vdso|/lib64/ld-linux) ]] && continue
      die "$(basename "$binary") needs $name, which ldd cannot find"
    fi
    case "$path" in
      "$torch_root"/*|"$stage"/*) ;;
      "$swift_lib"/*) cp -L "$path" "$stage/lib/swift/" ;;
      */libstdc++.so.6) cp -L "$path" "$stage/lib/compat/" ;;
      *) [[ "$name" =~ $base ]] || cp -L "$path" "$stage/lib/" ;;
    esac
  done
done
# Libraries nearly every system has, whose Debian build needs a newer glibc than the rest of the
# bundle (libexpat, for GDCM: arc4random_buf, glibc 2.36): in lib/fallback, which the launcher
# uses only where the machine lacks its own, so they do not raise the bundle's glibc floor.
mkdir -p "$stage/lib/fallback"
for name in libexpat.so.1; do
  [ -f "$stage/lib/$name" ] && mv "$stage/lib/$name" "$stage/lib/fallback/"
done
strip --strip-unneeded "$stage"/lib/*.so* "$stage"/lib/swift/*.so* "$stage"/lib/compat/*.so* "$stage"/lib/fallback/*.so* 2>/dev/null || true

# Nothing may point at this machine: every run path is relative to the binary.
for f in "$stage"/bin/medseg "$stage"/bin/*.xctest "$stage"/lib/*.so* "$stage"/lib/swift/*.so* "$stage"/lib/fallback/*.so*; do
  rp=$(readelf -d "$f" | sed -n 's/.*(R\(UN\)\?PATH).*\[\(.*\)\]/\2/p')
  for p in ${rp//:/ }; do
    [[ "$p" == '$ORIGIN'* ]] || die "$(basename "$f") has the absolute run path $p"
  done
done

# The newest glibc and libstdc++ symbol versions the binaries and their libraries use.
newest() {
  for f in "$stage"/bin/* "$stage"/lib/*.so* "$stage"/lib/swift/*.so*; do [ -f "$f" ] && objdump -T "$f" 2>/dev/null; done \
    | grep -o "$1_[0-9.]*" | sed "s/$1_//" | sort -V | tail -1
}
glibc=$(newest GLIBC)
glibcxx=$(newest GLIBCXX)
torch_version=$(sed -n "s/^__version__ *= *['\"]\([^'\"+]*\).*/\1/p" "$LIBTORCH/version.py")
cuda_version=$(sed -n "s/^cuda *: *[^=]*= *['\"]\([^'\"]*\)['\"].*/\1/p" "$LIBTORCH/version.py")
commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
cat > "$stage/BUILD_INFO" <<INFO
BUILT_TORCH=$torch_version
BUILT_CUDA=$cuda_version
BUILT_GLIBC=$glibc
BUILT_GLIBCXX=$glibcxx
MEDSEG_COMMIT=$commit
BUILT_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
INFO

mkdir -p "$out"
archive="$out/medseg-gpu-bundle.tar.xz"
tar -C "$stage_parent" -cf - medseg-gpu-bundle | xz -T0 -6 > "$archive.tmp"
mv "$archive.tmp" "$archive"
size=$(stat -c %s "$archive")
say "$archive: $((size / 1048576)) MiB ($(du -sh "$stage" | cut -f1) unpacked; torch $torch_version, CUDA $cuda_version, glibc >= $glibc, $commit)"
[ "$size" -le $((limit_mib * 1048576)) ] || die "the bundle is $((size / 1048576)) MiB, over $limit_mib MiB"
