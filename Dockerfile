# hermes-s6: the Hermes agent gateway image with s6 as PID 1.
# Built with `docker buildx bake` (see docker-bake.hcl). No `# syntax=` line:
# the Dockerfile frontend built into BuildKit is used, so builds work offline.

ARG BASE_IMAGE=debian:trixie-slim
ARG S6_SOURCE=release
ARG HERMES_AGENT=real
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9
# The pinned s6-overlay release: the download (ADD --checksum) and the
# unpacking stage both check these.
ARG S6_OVERLAY_VERSION=3.2.3.0
ARG S6_OVERLAY_NOARCH_SHA256=b720f9d9340efc8bb07528b9743813c836e4b02f8693d90241f047998b4c53cf
ARG S6_OVERLAY_X86_64_SHA256=a93f02882c6ed46b21e7adb5c0add86154f01236c93cd82c7d682722e8840563
ARG S6_OVERLAY_AARCH64_SHA256=0952056ff913482163cc30e35b2e944b507ba1025d78f5becbb89367bf344581
ARG S6_OVERLAY_SYMLINKS_NOARCH_SHA256=a60dc5235de3ecbcf874b9c1f18d73263ab99b289b9329aa950e8729c4789f0e
ARG S6_OVERLAY_SYMLINKS_ARCH_SHA256=8e8407a0cf84fd8884cc7de52049bdce71bf3993f07cbaa2a7c8cebc9581d805

# ---------------------------------------------------------------- base
FROM ${BASE_IMAGE} AS base

# ---------------------------------------------------------------- Go toolchain
# Debian's Go bootstraps the exact toolchain go.mod names, fetched from the
# Go module proxy (GOTOOLCHAIN=auto). Runs on the build platform: FROM the
# image, not the `base` stage (a stage's platform overrides --platform).
FROM --platform=$BUILDPLATFORM ${BASE_IMAGE} AS go
ARG BUILDPLATFORM
ARG GOPROXY=https://proxy.golang.org,direct
ENV GOPROXY=${GOPROXY} GOTOOLCHAIN=auto GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
    GOMODCACHE=/go/pkg/mod GOCACHE=/root/.cache/go-build
RUN --mount=type=cache,id=apt-cache-$BUILDPLATFORM,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,id=apt-lists-$BUILDPLATFORM,target=/var/lib/apt/lists,sharing=locked <<EOT
set -eu
rm -f /etc/apt/apt.conf.d/docker-clean
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go ca-certificates >/dev/null
EOT
WORKDIR /src
COPY go.mod go.sum ./
# go-with-ca: use the build secret `ca-bundle` (if given) as the TLS trust store.
RUN <<EOT
cat >/usr/local/bin/go-with-ca <<'SH'
#!/bin/sh
[ -s /run/secrets/ca-bundle ] && export SSL_CERT_FILE=/run/secrets/ca-bundle
exec go "$@"
SH
chmod +x /usr/local/bin/go-with-ca
EOT
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=cache,target=/root/go/pkg/mod --mount=type=secret,id=ca-bundle,required=false \
    go-with-ca version

# ---------------------------------------------------------------- Go tools
# Static binaries for the target platform, cross-compiled (no emulation).
FROM go AS tools
ARG TARGETOS TARGETARCH
COPY tools/ tools/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=cache,target=/root/go/pkg/mod --mount=type=secret,id=ca-bundle,required=false <<EOT
set -eu
GOOS=$TARGETOS GOARCH=$TARGETARCH go-with-ca build -trimpath -ldflags='-s -w' -o /out/ \
  ./tools/cmd/hermes-s6 ./tools/cmd/hermes-agent-standin
EOT

# ---------------------------------------------------------------- rendered rootfs
# The tree copied into the image, with the service directories of
# gateway-default and dashboard rendered by render-run (never hand-written)
# into /etc/hermes-s6/slots: what the boot reconciler installs in the scan
# directory (it renders them with the same code; the harness compares).
# Every file's mtime is set to SOURCE_DATE_EPOCH here, so that a clean build
# does not depend on the checkout: files unchanged since an older checkout
# keep their older mtimes, which rewrite-timestamp does not clamp. (A build
# that takes the COPYs of /out from BuildKit's cache still gets the mtimes of
# the build that filled it: the cache is keyed by content, not mtimes.)
FROM go AS rootfs
ARG SOURCE_DATE_EPOCH=0
COPY tools/ tools/
COPY rootfs/ /out/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=cache,target=/root/go/pkg/mod --mount=type=secret,id=ca-bundle,required=false <<EOT
set -eu
go-with-ca build -o /tmp/hermes-s6 ./tools/cmd/hermes-s6
/tmp/hermes-s6 render-run -out /out/etc/hermes-s6/slots gateway-default dashboard
# The multi-call binary's names, from its own table (tools/commands).
mkdir -p /out/usr/local/bin
/tmp/hermes-s6 links /out/usr/local/bin
# with-contenv of the debian stage layer (s6-overlay brings its own).
install -D -m 0755 tools/stage/with-contenv /out-debian/command/with-contenv
find /out /out-debian -exec touch -h -d "@${SOURCE_DATE_EPOCH}" {} +
EOT

# ---------------------------------------------------------------- s6: release tarballs
# The official s6-overlay tarballs. Replace this stage with a local folder
# holding the same file names (named context `s6-tarballs`) to build from a
# mirror without network; they are checksum-verified either way: each
# download by ADD --checksum (BuildKit refuses other content), and again
# before unpacking (a named context too).
FROM scratch AS s6-tarballs
ARG S6_OVERLAY_BASE_URL=https://github.com/just-containers/s6-overlay/releases/download
ARG S6_OVERLAY_VERSION S6_OVERLAY_NOARCH_SHA256 S6_OVERLAY_X86_64_SHA256 S6_OVERLAY_AARCH64_SHA256 \
    S6_OVERLAY_SYMLINKS_NOARCH_SHA256 S6_OVERLAY_SYMLINKS_ARCH_SHA256
ADD --checksum=sha256:${S6_OVERLAY_NOARCH_SHA256} ${S6_OVERLAY_BASE_URL}/v${S6_OVERLAY_VERSION}/s6-overlay-noarch.tar.xz /
ADD --checksum=sha256:${S6_OVERLAY_X86_64_SHA256} ${S6_OVERLAY_BASE_URL}/v${S6_OVERLAY_VERSION}/s6-overlay-x86_64.tar.xz /
ADD --checksum=sha256:${S6_OVERLAY_AARCH64_SHA256} ${S6_OVERLAY_BASE_URL}/v${S6_OVERLAY_VERSION}/s6-overlay-aarch64.tar.xz /
ADD --checksum=sha256:${S6_OVERLAY_SYMLINKS_NOARCH_SHA256} ${S6_OVERLAY_BASE_URL}/v${S6_OVERLAY_VERSION}/s6-overlay-symlinks-noarch.tar.xz /
ADD --checksum=sha256:${S6_OVERLAY_SYMLINKS_ARCH_SHA256} ${S6_OVERLAY_BASE_URL}/v${S6_OVERLAY_VERSION}/s6-overlay-symlinks-arch.tar.xz /

FROM --platform=$BUILDPLATFORM ${BASE_IMAGE} AS s6-release-files
ARG BUILDPLATFORM TARGETARCH
ARG S6_OVERLAY_VERSION S6_OVERLAY_NOARCH_SHA256 S6_OVERLAY_X86_64_SHA256 S6_OVERLAY_AARCH64_SHA256 \
    S6_OVERLAY_SYMLINKS_NOARCH_SHA256 S6_OVERLAY_SYMLINKS_ARCH_SHA256
RUN --mount=type=cache,id=apt-cache-$BUILDPLATFORM,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,id=apt-lists-$BUILDPLATFORM,target=/var/lib/apt/lists,sharing=locked <<EOT
set -eu
rm -f /etc/apt/apt.conf.d/docker-clean
command -v xz >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends xz-utils >/dev/null; }
EOT
RUN --mount=from=s6-tarballs,target=/tarballs <<EOT
set -eu
case "$TARGETARCH" in
  amd64) arch=x86_64 sum=$S6_OVERLAY_X86_64_SHA256 ;;
  arm64) arch=aarch64 sum=$S6_OVERLAY_AARCH64_SHA256 ;;
  *) echo "s6-overlay: unsupported TARGETARCH '$TARGETARCH': release tarballs exist for amd64 (x86_64) and arm64 (aarch64)" >&2; exit 1 ;;
esac
cat >/tmp/sums <<SUMS
$S6_OVERLAY_NOARCH_SHA256  s6-overlay-noarch.tar.xz
$sum  s6-overlay-$arch.tar.xz
$S6_OVERLAY_SYMLINKS_NOARCH_SHA256  s6-overlay-symlinks-noarch.tar.xz
$S6_OVERLAY_SYMLINKS_ARCH_SHA256  s6-overlay-symlinks-arch.tar.xz
SUMS
cd /tarballs
if ! sha256sum --strict -c /tmp/sums >/tmp/check 2>&1; then
  echo "s6-overlay ${S6_OVERLAY_VERSION}: checksum verification FAILED (refusing to unpack):" >&2
  grep -v ': OK$' /tmp/check >&2
  exit 1
fi
mkdir /s6root
for t in noarch "$arch" symlinks-noarch symlinks-arch; do
  tar -C /s6root -Jxpf "s6-overlay-$t.tar.xz"
done
EOT

# ---------------------------------------------------------------- agent payloads
# The real Hermes agent, installed from its source at a pinned ref (needs
# network), the way upstream's image installs it: the ref's own uv.lock,
# frozen (every transitive version locked), with the extras upstream's image
# ships (HERMES_AGENT_EXTRAS; hermes-agent 00067189 Dockerfile), into a venv
# under /opt/hermes, root's: the agent cannot change its own code. It needs
# Python 3.14 (pyproject requires-python), which uv installs there too.
# See docs/agent-contract.md.
FROM ${UV_IMAGE} AS uv

FROM base AS agent-real
ARG TARGETPLATFORM
ARG HERMES_AGENT_REPO=https://github.com/NousResearch/hermes-agent
ARG HERMES_AGENT_REF=00067189dfecf833d4d009c2dd977ae85cf800e0
ARG HERMES_AGENT_EXTRAS=all,messaging,otlp,anthropic,bedrock,azure-identity,hindsight,matrix,google-chat
ENV UV_PYTHON_INSTALL_DIR=/opt/hermes/python UV_LINK_MODE=copy UV_NO_CACHE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/hermes/venv UV_PYTHON_PREFERENCE=only-managed
RUN --mount=type=cache,id=apt-cache-$TARGETPLATFORM,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,id=apt-lists-$TARGETPLATFORM,target=/var/lib/apt/lists,sharing=locked \
    --mount=from=uv,source=/uv,target=/usr/local/bin/uv <<EOT
set -eu
rm -f /etc/apt/apt.conf.d/docker-clean
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git ca-certificates >/dev/null
git init -q /tmp/agent
git -C /tmp/agent fetch -q --depth 1 "${HERMES_AGENT_REPO}" "${HERMES_AGENT_REF}"
git -C /tmp/agent checkout -q FETCH_HEAD
extras=
for e in $(echo "${HERMES_AGENT_EXTRAS}" | tr ',' ' '); do extras="$extras --extra $e"; done
# --frozen: exactly the ref's uv.lock; --no-editable: the agent is installed
# into the venv, not linked to the source, which is removed.
# shellcheck disable=SC2086
uv sync --project /tmp/agent --frozen --no-dev --no-editable --python 3.14 $extras
rm -rf /tmp/agent
# Logs and caches that record when the build ran: out, for reproducible layers.
rm -rf /var/log/dpkg.log /var/log/apt /var/log/alternatives.log /var/cache/ldconfig/aux-cache
mkdir -p /opt/hermes/bin
ln -s ../venv/bin/hermes /opt/hermes/bin/hermes-agent
EOT
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

# The stand-in agent (test and hermetic images only): a Go test double that
# honours the agent's contract. See tools/standin.
FROM base AS agent-standin
COPY --link --from=tools /out/hermes-agent-standin /opt/hermes/bin/hermes-agent

FROM agent-${HERMES_AGENT} AS with-agent

# ---------------------------------------------------------------- s6 layer
FROM with-agent AS s6-release
COPY --link --from=s6-release-files /s6root/ /

# Debian's s6 + execline and this repo's small s6-overlay-compatible stage layer.
FROM with-agent AS s6-debian
ARG TARGETPLATFORM
RUN --mount=type=cache,id=apt-cache-$TARGETPLATFORM,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,id=apt-lists-$TARGETPLATFORM,target=/var/lib/apt/lists,sharing=locked <<EOT
set -eu
rm -f /etc/apt/apt.conf.d/docker-clean
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends s6 execline >/dev/null
# Logs and caches that record when the build ran: out, for reproducible layers.
rm -rf /var/log/dpkg.log /var/log/apt /var/log/alternatives.log /var/cache/ldconfig/aux-cache
mkdir -p /command
for b in /usr/bin/s6-* /usr/bin/execlineb; do ln -s "$b" /command/; done
ln -s /usr/local/bin/hermes-s6 /init
# Like s6-overlay's preinit: /init works as any --user, so /run must be
# writable by it (a --tmpfs /run is 1777 too).
chmod 1777 /run
EOT
COPY --link --from=rootfs /out-debian/command/with-contenv /command/with-contenv

# ---------------------------------------------------------------- final image
FROM s6-${S6_SOURCE} AS image
ARG VERSION=dev REVISION=unknown CREATED=1970-01-01T00:00:00Z
ARG HERMES_AGENT
ARG S6_SOURCE
RUN <<EOT
set -eu
groupadd -g 10000 hermes
useradd -u 10000 -g 10000 -d /opt/data -M -s /usr/sbin/nologin hermes
mkdir -p /opt/data
chown hermes:hermes /opt/data
# /run as s6-overlay's preinit wants it when it cannot fix it (no root, or
# no_new_privs defeats its setuid helper): a `--tmpfs /run` takes the mode of
# the image's /run, whatever mode= says. A root container makes it 0755
# root's at boot (hermes-setup), before any hermes process exists.
chmod 1777 /run
# Reproducible: no backup files or login records stamped with the build time,
# and the account's "last password change" day fixed (the account has no password).
rm -f /etc/passwd- /etc/group- /etc/shadow- /etc/gshadow- /var/log/lastlog /var/log/faillog
sed -i 's/^hermes:\([^:]*\):[0-9]*:/hermes:\1:0:/' /etc/shadow
EOT
COPY --link --from=tools /out/hermes-s6 /usr/local/bin/hermes-s6
COPY --link --from=rootfs /out/ /
ENV PATH=/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HERMES_HOME=/opt/data \
    HERMES_AGENT_BIN=/opt/hermes/bin/hermes-agent \
    S6_CMD_ARG0=/usr/local/bin/hermes-entrypoint \
    S6_KILL_GRACETIME=200 \
    S6_VERBOSITY=1
LABEL org.opencontainers.image.title="hermes-s6" \
      org.opencontainers.image.description="Hermes agent gateway supervised by s6 (s6-overlay as PID 1)" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      io.hermes.s6.source="${S6_SOURCE}" \
      io.hermes.agent="${HERMES_AGENT}"
WORKDIR /opt/data
VOLUME /opt/data
EXPOSE 8642 9119
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/hermes", "healthcheck"]
# hermes-init execs /init as PID 1; elsewhere (docker run --init) it runs
# the setup and the CMD in the foreground, without supervision.
ENTRYPOINT ["/usr/local/bin/hermes-init"]
CMD ["gateway", "run"]
