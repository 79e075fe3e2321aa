# docker buildx bake: the hermes-s6 images.
#   docker buildx bake            production image (release s6-overlay, real agent)
#   docker buildx bake hermetic   no registry, no GitHub: local base, Debian s6, stand-in agent
#   docker buildx bake test       the hermetic image loaded into the engine as hermes-s6:test
#   docker buildx bake release    multi-arch, attested, pushed to ${IMAGE}
#   docker buildx bake publish-hermetic   the hermetic image, multi-arch, pushed to ${IMAGE}

variable "BASE_IMAGE" {
  default = "debian:trixie-slim"
}
# oci-layout:// context that replaces BASE_IMAGE in hermetic builds
# (made by .ci/provision from mmdebstrap; must live under this directory).
variable "BASE_CONTEXT" {
  default = "oci-layout://.cache/base-oci:trixie"
}
variable "S6_SOURCE" {
  default = "release"
  validation {
    condition     = contains(["release", "debian"], S6_SOURCE)
    error_message = "S6_SOURCE must be \"release\" (s6-overlay tarballs) or \"debian\" (Debian's s6 + the stage layer)."
  }
}
variable "S6_OVERLAY_VERSION" {
  default = "3.2.3.0"
}
variable "S6_OVERLAY_BASE_URL" {
  default = "https://github.com/just-containers/s6-overlay/releases/download"
}
variable "S6_OVERLAY_NOARCH_SHA256" {
  default = "b720f9d9340efc8bb07528b9743813c836e4b02f8693d90241f047998b4c53cf"
}
variable "S6_OVERLAY_X86_64_SHA256" {
  default = "a93f02882c6ed46b21e7adb5c0add86154f01236c93cd82c7d682722e8840563"
}
variable "S6_OVERLAY_AARCH64_SHA256" {
  default = "0952056ff913482163cc30e35b2e944b507ba1025d78f5becbb89367bf344581"
}
variable "S6_OVERLAY_SYMLINKS_NOARCH_SHA256" {
  default = "a60dc5235de3ecbcf874b9c1f18d73263ab99b289b9329aa950e8729c4789f0e"
}
variable "S6_OVERLAY_SYMLINKS_ARCH_SHA256" {
  default = "8e8407a0cf84fd8884cc7de52049bdce71bf3993f07cbaa2a7c8cebc9581d805"
}
# A local folder with the s6-overlay tarballs (air-gapped mirror); empty:
# download from S6_OVERLAY_BASE_URL. Checksums are verified either way.
variable "S6_TARBALLS_CONTEXT" {
  default = ""
}
# s6 source of the test image: "debian" here; "release" where the
# s6-overlay tarballs can be downloaded or are given by S6_TARBALLS_CONTEXT.
variable "TEST_S6_SOURCE" {
  default = "debian"
  validation {
    condition     = contains(["release", "debian"], TEST_S6_SOURCE)
    error_message = "TEST_S6_SOURCE must be \"release\" or \"debian\"."
  }
}
variable "HERMES_AGENT_REPO" {
  default = "https://github.com/NousResearch/hermes-agent"
}
# A commit of the agent (pyproject version 0.21.3); tags work too.
variable "HERMES_AGENT_REF" {
  default = "00067189dfecf833d4d009c2dd977ae85cf800e0"
}
# The agent's optional extras installed by the production image, as
# upstream's image installs them (its Dockerfile at HERMES_AGENT_REF).
variable "HERMES_AGENT_EXTRAS" {
  default = "all,messaging,otlp,anthropic,bedrock,azure-identity,hindsight,matrix,google-chat"
  validation {
    condition     = length(regexall("^[a-z0-9-]+(,[a-z0-9-]+)*$", HERMES_AGENT_EXTRAS)) == 1
    error_message = "HERMES_AGENT_EXTRAS must be a comma-separated list of extra names (a-z, 0-9, -)."
  }
}
variable "GOPROXY" {
  default = "https://proxy.golang.org,direct"
}
# CA bundle for TLS from inside the build (Go toolchain and modules), for
# networks that intercept TLS with their own CA; empty: none. On a machine
# it provisions, .ci/provision copies the host's bundle to
# .cache/ca-bundle.crt and sets HERMETIC_CA_BUNDLE to it in the untracked
# docker-bake.override.hcl (which bake reads after this file), so that a
# fresh clone still resolves every target (`--print`) before provisioning.
variable "CA_BUNDLE" {
  default = ""
}
variable "HERMETIC_CA_BUNDLE" {
  default = ""
}
variable "IMAGE" {
  default = "hermes-s6"
}
variable "TAG" {
  default = "dev"
}
variable "VERSION" {
  default = "dev"
}
variable "REVISION" {
  default = "unknown"
}
variable "SOURCE_DATE_EPOCH" {
  default = "0"
}
variable "PLATFORMS" {
  default = "linux/amd64,linux/arm64"
  validation {
    condition     = length([for p in split(",", PLATFORMS) : p if !contains(["linux/amd64", "linux/arm64"], trimspace(p))]) == 0
    error_message = "PLATFORMS must be a comma-separated list of linux/amd64 and linux/arm64."
  }
}

group "default" {
  targets = ["image"]
}

target "_common" {
  dockerfile = "Dockerfile"
  context    = "."
  target     = "image"
  args = {
    BASE_IMAGE                        = BASE_IMAGE
    S6_OVERLAY_VERSION                = S6_OVERLAY_VERSION
    S6_OVERLAY_BASE_URL               = S6_OVERLAY_BASE_URL
    S6_OVERLAY_NOARCH_SHA256          = S6_OVERLAY_NOARCH_SHA256
    S6_OVERLAY_X86_64_SHA256          = S6_OVERLAY_X86_64_SHA256
    S6_OVERLAY_AARCH64_SHA256         = S6_OVERLAY_AARCH64_SHA256
    S6_OVERLAY_SYMLINKS_NOARCH_SHA256 = S6_OVERLAY_SYMLINKS_NOARCH_SHA256
    S6_OVERLAY_SYMLINKS_ARCH_SHA256   = S6_OVERLAY_SYMLINKS_ARCH_SHA256
    HERMES_AGENT_REPO                 = HERMES_AGENT_REPO
    HERMES_AGENT_REF                  = HERMES_AGENT_REF
    HERMES_AGENT_EXTRAS               = HERMES_AGENT_EXTRAS
    GOPROXY                           = GOPROXY
    VERSION                           = VERSION
    REVISION                          = REVISION
    CREATED                           = formatdate("YYYY-MM-DD'T'hh:mm:ssZ", timeadd("1970-01-01T00:00:00Z", "${SOURCE_DATE_EPOCH}s"))
    SOURCE_DATE_EPOCH                 = SOURCE_DATE_EPOCH
  }
  contexts = S6_TARBALLS_CONTEXT == "" ? {} : { s6-tarballs = S6_TARBALLS_CONTEXT }
  secret   = CA_BUNDLE == "" ? [] : ["id=ca-bundle,src=${CA_BUNDLE}"]
  labels = {
    "org.opencontainers.image.source" = "https://github.com/hermes-agent/hermes-s6"
  }
}

# Production image: s6-overlay release tarballs, the real agent.
target "image" {
  inherits = ["_common"]
  args = {
    S6_SOURCE    = S6_SOURCE
    HERMES_AGENT = "real"
  }
  tags = ["${IMAGE}:${TAG}"]
}

# Hermetic image: builds with no registry and no GitHub (Debian mirror and
# Go module proxy only): the local base, Debian's s6, the stand-in agent.
target "hermetic" {
  inherits = ["_common"]
  args = {
    S6_SOURCE    = "debian"
    HERMES_AGENT = "standin"
  }
  contexts = merge(
    S6_TARBALLS_CONTEXT == "" ? {} : { s6-tarballs = S6_TARBALLS_CONTEXT },
    BASE_CONTEXT == "" ? {} : { (BASE_IMAGE) = BASE_CONTEXT },
  )
  secret = HERMETIC_CA_BUNDLE == "" ? [] : ["id=ca-bundle,src=${HERMETIC_CA_BUNDLE}"]
  tags = ["${IMAGE}:hermetic"]
}

# The image the harness tests, loaded into the local engine as hermes-s6:test.
target "test" {
  inherits = ["hermetic"]
  args = {
    S6_SOURCE = TEST_S6_SOURCE
  }
  tags   = [TEST_S6_SOURCE == "debian" ? "hermes-s6:test" : "hermes-s6:test-${TEST_S6_SOURCE}"]
  output = ["type=docker"]
}

group "release" {
  targets = ["release"]
}

# Build cache for CI, one cache spec each (e.g. "type=gha,scope=release" or
# "type=registry,ref=ghcr.io/o/hermes-s6:buildcache"); empty: no cache
# import/export. Used by release, release-by-digest and publish-hermetic.
variable "CACHE_FROM" {
  default = ""
}
variable "CACHE_TO" {
  default = ""
}
# true: push over plain HTTP / without verifying the registry's certificate
# (a local test registry such as 127.0.0.1:PORT). publish-hermetic only.
variable "REGISTRY_INSECURE" {
  default = false
}

target "_publish" {
  platforms  = [for p in split(",", PLATFORMS) : trimspace(p)]
  cache-from = CACHE_FROM == "" ? [] : [CACHE_FROM]
  cache-to   = CACHE_TO == "" ? [] : [CACHE_TO]
}

# Multi-arch, reproducible, attested; pushed to ${IMAGE}. Tags: VERSION,
# `latest` for releases (VERSION is MAJOR.MINOR.PATCH: not dev, not a
# pre-release such as 1.2.0-rc.1), sha-<short REVISION>.
# Pass SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) for reproducible digests.
target "release" {
  inherits = ["image", "_publish"]
  tags = compact([
    "${IMAGE}:${VERSION}",
    can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", VERSION)) ? "${IMAGE}:latest" : "",
    REVISION != "unknown" ? "${IMAGE}:sha-${substr(REVISION, 0, 7)}" : "",
  ])
  attest = [
    "type=provenance,mode=max",
    "type=sbom",
  ]
  output = ["type=image,push=true,rewrite-timestamp=true"]
}

# One platform of the release (PLATFORMS=linux/arm64 on an arm64 runner),
# pushed untagged by digest; the per-platform digests are merged into the
# tagged index with `docker buildx imagetools create` (release.yml).
target "release-by-digest" {
  inherits = ["release"]
  tags     = []
  output   = ["type=image,name=${IMAGE},push-by-digest=true,name-canonical=true,push=true,rewrite-timestamp=true"]
}

# The SBOM generator image of publish-hermetic (BuildKit's SBOM protocol):
# BuildKit pulls it, so without a registry it is this project's own scanner
# (.ci/scanner) pushed to a local one, e.g. 127.0.0.1:5000/sbom-scanner@sha256:…
# (harness/publish does that). Empty: no SBOM.
variable "SBOM_GENERATOR" {
  default = ""
}

# The hermetic image (local base, Debian's s6, stand-in agent), multi-arch
# from PLATFORMS, pushed to ${IMAGE} with provenance, and with an SBOM per
# platform when SBOM_GENERATOR names a generator image. The
# tags say "hermetic" so a stand-in image can never pass for a release.
# The harness pushes it to a registry on 127.0.0.1 (harness/publish).
target "publish-hermetic" {
  inherits = ["hermetic", "_publish"]
  tags = compact([
    "${IMAGE}:${VERSION}-hermetic",
    REVISION != "unknown" ? "${IMAGE}:sha-${substr(REVISION, 0, 7)}-hermetic" : "",
  ])
  attest = [
    "type=provenance,mode=max",
    SBOM_GENERATOR == "" ? "type=sbom,disabled=true" : "type=sbom,generator=${SBOM_GENERATOR}",
  ]
  output = [REGISTRY_INSECURE ? "type=image,push=true,rewrite-timestamp=true,registry.insecure=true" : "type=image,push=true,rewrite-timestamp=true"]
}
