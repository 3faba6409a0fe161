# Sourced by scripts/gpu_check.sh (on the GPU machine) and scripts/torch2_suite.sh (here), from
# the repository root: unpacks .gpu/debs, the Debian libraries the build needs beside PyTorch's
# libtorch (scripts/gpu_prepare.sh), into $sys and points PATH, pkg-config and the loader there.
sys=/tmp/flipless-sysroot
mkdir -p "$sys"
for deb in .gpu/debs/*.deb; do dpkg -x "$deb" "$sys"; done
export PATH="$sys/usr/bin:$PATH"
export PKG_CONFIG_SYSROOT_DIR="$sys"
export PKG_CONFIG_LIBDIR="$sys/usr/lib/x86_64-linux-gnu/pkgconfig:$sys/usr/share/pkgconfig"
export LD_LIBRARY_PATH="$sys/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
