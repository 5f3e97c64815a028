#!/usr/bin/env bash
# Installs the independent tools the tests compare wormsign against (Debian packages).
# Idempotent: does nothing when they are already there.
set -euo pipefail
need=()
command -v tshark >/dev/null || need+=(tshark)
command -v capinfos >/dev/null || need+=(tshark)
command -v editcap >/dev/null || need+=(tshark)
command -v tcpdump >/dev/null || need+=(tcpdump)
command -v nfpcapd >/dev/null || need+=(nfdump)
command -v softflowd >/dev/null || need+=(softflowd)
command -v argus >/dev/null || need+=(argus-server argus-client)
command -v zstd >/dev/null || need+=(zstd)
[ -x /usr/bin/time ] || need+=(time)
command -v chromium >/dev/null || need+=(chromium)
# Spark (python/tests/test_spark.py) runs on the JVM.
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # openjdk's post-install step fails on slim images that ship without this directory.
  $sudo mkdir -p /usr/share/man/man1
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
