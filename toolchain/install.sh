#!/usr/bin/env bash
# Installs the pinned toolchain (toolchain/versions.env) and links every binary into .tools/bin.
#
# Built and downloaded artefacts live in a cache outside the work tree
# (${PREQUAL_CACHE:-~/.cache/loan-prequal}), keyed by version, so a fresh clone (CI) reuses
# them; .tools/ only holds links into it. Each step is skipped when its output exists, so a
# second run does nothing and says so.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=versions.env
source "$root/toolchain/versions.env"
cache=${PREQUAL_CACHE:-$HOME/.cache/loan-prequal}
tools=$root/.tools
bin=$tools/bin
mkdir -p "$cache/bin" "$bin"
# One installer at a time per cache: two work trees (or CI beside a developer) building the same
# version would both write its .tmp folder and one would fail half-way.
exec 9>"$cache/.install.lock"
if ! flock -n 9; then
  echo "make tools: another 'make tools' is filling $cache; waiting for it to finish"
  flock 9
fi
export GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build GOFLAGS=-mod=mod GOTOOLCHAIN=local

did_something=0
step() { printf '==> %s\n' "$*"; did_something=1; }
die() { printf 'make tools: %s\n' "$*" >&2; exit 1; }
# Runs a long command, printing a heartbeat every 30 s and the log tail if it fails.
run_logged() {
  local what=$1 log=$cache/logs/$1.log; shift
  mkdir -p "$cache/logs"
  local started=$SECONDS
  "$@" >"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 5
    if kill -0 "$pid" 2>/dev/null && (( (SECONDS - started) % 30 < 5 )); then
      printf '    ... %s still running (%ds, log: %s)\n' "$what" $((SECONDS - started)) "$log"
    fi
  done
  if ! wait "$pid"; then
    tail -n 30 "$log" >&2
    die "$what failed after $((SECONDS - started))s; full log: $log"
  fi
  printf '    %s done in %ds\n' "$what" $((SECONDS - started))
}
link() { ln -sfn "$1" "$bin/$2"; }

# --- prerequisites -------------------------------------------------------------------------
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2"; }
need go "install Go 1.24 or newer (https://go.dev/doc/install or Debian's golang-go)"
need java "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
need mvn "install Maven (Debian: apt-get install maven)"
java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
[ "${java_major:-0}" -ge 17 ] || die "Kafka 4 needs Java 17 or newer; found Java ${java_major:-unknown}"

apt_install() {
  [ "$(id -u)" = 0 ] || die "$1 is missing and installing it needs root: run 'sudo apt-get install -y $*' and retry"
  step "apt-get install $*"
  run_logged apt-get-update apt-get update
  run_logged "apt-get-install-$1" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

# --- PostgreSQL and Prometheus from Debian ----------------------------------------------------
pg_bin=/usr/lib/postgresql/$POSTGRES_MAJOR/bin
[ -x "$pg_bin/postgres" ] || apt_install "postgresql-$POSTGRES_MAJOR" "postgresql-client-$POSTGRES_MAJOR"
[ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] || apt_install prometheus
for b in postgres initdb pg_ctl psql pg_isready pgbench; do link "$pg_bin/$b" "$b"; done

# --- The real node of `make cluster` (docs/cluster.md) from Debian ----------------------------
# A second containerd (Debian's 1.6, the one docker.io uses) with the CRI plugin, runc, the CNI
# plugins, iptables and conntrack for kube-proxy, a static busybox for the pause image, and nft
# to see and remove the NetworkPolicy agent's nftables table (it outlives its pod).
node_pkgs=()
[ -x /usr/bin/containerd ] && [ -x /usr/bin/ctr ] || node_pkgs+=(containerd)
[ -x /usr/sbin/runc ] || [ -x /usr/bin/runc ] || node_pkgs+=(runc)
[ -x /usr/lib/cni/bridge ] || node_pkgs+=(containernetworking-plugins)
command -v iptables >/dev/null 2>&1 || node_pkgs+=(iptables)
command -v conntrack >/dev/null 2>&1 || node_pkgs+=(conntrack)
command -v nft >/dev/null 2>&1 || node_pkgs+=(nftables)
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || node_pkgs+=(busybox-static)
[ ${#node_pkgs[@]} = 0 ] || apt_install "${node_pkgs[@]}"
link /usr/bin/containerd containerd
link /usr/bin/ctr ctr
link /usr/bin/prometheus prometheus
link /usr/bin/promtool promtool

# --- Kafka from Maven Central ---------------------------------------------------------------
kafka_home=$cache/kafka-$KAFKA_SCALA_VERSION-$KAFKA_VERSION
if [ ! -f "$kafka_home/.complete" ]; then
  step "Kafka $KAFKA_VERSION (Scala $KAFKA_SCALA_VERSION) from Maven Central"
  rm -rf "$kafka_home"
  run_logged kafka-resolve mvn -B -f "$root/toolchain/kafka/pom.xml" -Dmaven.repo.local="$cache/m2" \
    -Dkafka.version="$KAFKA_VERSION" -Dscala.binary.version="$KAFKA_SCALA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$kafka_home/libs"
  touch "$kafka_home/.complete"
fi
ln -sfn "$kafka_home" "$tools/kafka"

# --- Go-built binaries ----------------------------------------------------------------------
# go_wrapper DIR MODULE: a throwaway module in the cache that requires what DIR's sources import.
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1"
  k8s_ldflags+=" -X $pkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# The control plane, kubectl, and the node's own binaries (kubelet, kube-scheduler, kube-proxy
# for `make cluster`), all from one wrapper module so they agree on every dependency.
K8S_COMMANDS="kube-apiserver kube-controller-manager kubectl kubelet kube-scheduler kube-proxy"
build_k8s() {
  local out=$cache/bin/k8s-$K8S_VERSION missing=0 c
  for c in $K8S_COMMANDS; do [ -x "$out/$c" ] || missing=1; done
  [ "$missing" = 0 ] && return
  step "$K8S_COMMANDS $K8S_VERSION from the Go module proxy (several minutes)"
  local mod=$cache/src/k8s-$K8S_VERSION
  rm -rf "$mod" && mkdir -p "$mod" && cp "$root/toolchain/k8s/tools.go" "$mod/"
  run_logged k8s-download go mod download -json "k8s.io/kubernetes@$K8S_VERSION"
  # k8s.io/kubernetes names its staging modules at v0.0.0 with local replaces; point them at
  # the published staging releases instead.
  {
    printf 'module prequal.dev/toolchain/k8s\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$K8S_VERSION"
    grep -E '=> \./staging/src/' "$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod" |
      awk -v v="$K8S_STAGING_VERSION" '{ printf "\t%s => %s %s\n", $1, $1, v }'
    printf ')\n'
  } >"$mod/go.mod"
  (cd "$mod" && run_logged k8s-tidy go mod tidy)
  mkdir -p "$out.tmp"
  # shellcheck disable=SC2086 # one package per command
  (cd "$mod" && run_logged k8s-build go build -trimpath -ldflags "$k8s_ldflags" -o "$out.tmp/" \
    $(printf 'k8s.io/kubernetes/cmd/%s ' $K8S_COMMANDS))
  rm -rf "$out" && mv "$out.tmp" "$out"
}

build_etcd() {
  local out=$cache/bin/etcd-$ETCD_VERSION
  [ -x "$out/etcd" ] && return
  step "etcd $ETCD_VERSION from the Go module proxy"
  local mod=$cache/src/etcd-$ETCD_VERSION
  rm -rf "$mod" && mkdir -p "$mod" && cp "$root/toolchain/etcd/main.go" "$mod/"
  printf 'module prequal.dev/toolchain/etcd\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$mod/go.mod"
  (cd "$mod" && run_logged etcd-tidy go mod tidy)
  mkdir -p "$out.tmp"
  (cd "$mod" && run_logged etcd-build go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" .)
  rm -rf "$out" && mv "$out.tmp" "$out"
}

# go_install NAME PACKAGE VERSION [LDFLAGS]
go_install() {
  local name=$1 pkg=$2 version=$3 ldflags=${4:-"-s -w"}
  local out=$cache/bin/$name-$version
  [ -x "$out/$name" ] && return
  step "$name $version from the Go module proxy"
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  run_logged "$name-build" env GOBIN="$out.tmp" go install -trimpath -ldflags "$ldflags" "$pkg@$version"
  rm -rf "$out" && mv "$out.tmp" "$out"
}

build_k8s
for b in $K8S_COMMANDS; do link "$cache/bin/k8s-$K8S_VERSION/$b" "$b"; done
build_etcd
link "$cache/bin/etcd-$ETCD_VERSION/etcd" etcd
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
helm_ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
helm_ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
helm_ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
helm_ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "$helm_ldflags"
link "$cache/bin/helm-$HELM_VERSION/helm" helm
go_install kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION" "-s -w -X main.version=$KUBECONFORM_VERSION"
link "$cache/bin/kubeconform-$KUBECONFORM_VERSION/kubeconform" kubeconform

# --- Chart and local-cluster validation (issue 6) -------------------------------------------
# Kubernetes JSON schemas for kubeconform, offline: PyPI's kubernetes-validate bundles them per
# minor version. Its files name each other by absolute URL ($id, "/api/_definitions.json"); we
# drop the $id and make the refs relative so kubeconform resolves them on disk.
k8s_schema_version=$(echo "$K8S_VERSION" | cut -d. -f1-2).0
k8s_schemas=$cache/kubernetes-json-schema-$KUBERNETES_VALIDATE_VERSION/$k8s_schema_version-strict
if [ ! -f "$k8s_schemas/.complete" ]; then
  step "Kubernetes $k8s_schema_version JSON schemas (PyPI kubernetes-validate $KUBERNETES_VALIDATE_VERSION)"
  wheels=$cache/wheels && mkdir -p "$wheels"
  run_logged kubernetes-validate-download python3 -m pip download --quiet --no-deps \
    -d "$wheels" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  rm -rf "$k8s_schemas" && mkdir -p "$k8s_schemas"
  python3 - "$wheels/kubernetes_validate-$KUBERNETES_VALIDATE_VERSION-py3-none-any.whl" \
    "kubernetes_validate/kubernetes-json-schema/$k8s_schema_version-local-strict/" "$k8s_schemas" <<'PY'
import json, sys, zipfile
from pathlib import Path
wheel, prefix, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
count = 0
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        if name.startswith(prefix) and name.endswith(".json"):
            schema = json.loads(archive.read(name).decode().replace('"/api/_definitions.json#', '"_definitions.json#'))
            schema.pop("$id", None)
            (out / name[len(prefix):]).write_text(json.dumps(schema))
            count += 1
if count < 100:
    sys.exit(f"only {count} schemas under {prefix} in {wheel}")
PY
  touch "$k8s_schemas/.complete"
fi
ln -sfn "$k8s_schemas" "$tools/kubernetes-json-schema"

# kind cannot run here (no container engine), but its config loader can: kind-config-check is
# kind's own strict decoder and Validate, built inside a copy of the kind module (they are
# internal packages).
kind_check=$cache/bin/kind-config-check-$KIND_VERSION
if [ ! -x "$kind_check/kind-config-check" ]; then
  step "kind-config-check (kind $KIND_VERSION's config validation) from the Go module proxy"
  run_logged kind-download go mod download -json "sigs.k8s.io/kind@$KIND_VERSION"
  kind_src=$cache/src/kind-$KIND_VERSION
  rm -rf "$kind_src" && cp -r "$GOMODCACHE/sigs.k8s.io/kind@$KIND_VERSION" "$kind_src" && chmod -R u+w "$kind_src"
  mkdir -p "$kind_src/pkg/cmd/kind-config-check" && cp "$root/toolchain/kind/main.go" "$kind_src/pkg/cmd/kind-config-check/"
  mkdir -p "$kind_check.tmp"
  (cd "$kind_src" && run_logged kind-config-check-build go build -trimpath -ldflags "-s -w" \
    -o "$kind_check.tmp/kind-config-check" ./pkg/cmd/kind-config-check)
  rm -rf "$kind_check" && mv "$kind_check.tmp" "$kind_check"
fi
link "$kind_check/kind-config-check" kind-config-check

# Tilt: its go.mod has replaces, so `go install` refuses; build inside the module cache copy.
# The Go module proxy may refuse the module; then the Tiltfile test skips and says why.
tilt_out=$cache/bin/tilt-$TILT_VERSION
if [ ! -x "$tilt_out/tilt" ]; then
  if go mod download -json "github.com/tilt-dev/tilt@$TILT_VERSION" >"$cache/logs/tilt-download.log" 2>&1; then
    step "tilt $TILT_VERSION from the Go module proxy (several minutes)"
    tilt_src=$cache/src/tilt-$TILT_VERSION
    rm -rf "$tilt_src" && cp -r "$GOMODCACHE/github.com/tilt-dev/tilt@$TILT_VERSION" "$tilt_src" && chmod -R u+w "$tilt_src"
    mkdir -p "$tilt_out.tmp"
    (cd "$tilt_src" && run_logged tilt-build go build -mod=mod -trimpath -ldflags "-s -w" -o "$tilt_out.tmp/tilt" ./cmd/tilt)
    rm -rf "$tilt_out" && mv "$tilt_out.tmp" "$tilt_out"
  else
    echo "make tools: note: the Go module proxy refused github.com/tilt-dev/tilt@$TILT_VERSION" \
      "(see $cache/logs/tilt-download.log); Tiltfile tests that need tilt will skip"
  fi
fi
[ -x "$tilt_out/tilt" ] && link "$tilt_out/tilt" tilt

# --- ORY Hydra (issue 13): the local OAuth2/OIDC provider ------------------------------------
# Its go.mod has replaces, so `go install hydra@version` refuses: build inside a copy of the
# module. No build tags: PostgreSQL only (the sqlite tag would need cgo's sqlite).
hydra_out=$cache/bin/hydra-$HYDRA_VERSION
if [ ! -x "$hydra_out/hydra" ]; then
  step "hydra $HYDRA_VERSION from the Go module proxy (several minutes)"
  run_logged hydra-download go mod download -json "github.com/ory/hydra/v2@$HYDRA_VERSION"
  hydra_src=$cache/src/hydra-$HYDRA_VERSION
  rm -rf "$hydra_src" && cp -r "$GOMODCACHE/github.com/ory/hydra/v2@$HYDRA_VERSION" "$hydra_src" && chmod -R u+w "$hydra_src"
  # ./internal/httpclient is a nested module, so the module zip leaves it out: use the
  # published client module at the version hydra's go.mod requires.
  (cd "$hydra_src" && go mod edit -dropreplace github.com/ory/hydra-client-go/v2)
  mkdir -p "$hydra_out.tmp"
  (cd "$hydra_src" && run_logged hydra-build go build -mod=mod -trimpath \
    -ldflags "-s -w -X github.com/ory/hydra/v2/driver/config.Version=$HYDRA_VERSION" -o "$hydra_out.tmp/hydra" .)
  rm -rf "$hydra_out" && mv "$hydra_out.tmp" "$hydra_out"
fi
link "$hydra_out/hydra" hydra
# Headless Chromium from Debian: the test that /docs renders in a real browser.
command -v chromium >/dev/null 2>&1 || apt_install chromium
# --- Container images (`make images`, images/build.py) and chart scoring (issue 11) ------------
# Debian's docker.io (20.10, BuildKit built in; its daemon is started by images/dockerd.sh, there
# is no init system) lands in /usr/bin: a docker client earlier in PATH may be another one, so
# images/ calls /usr/bin/docker. mmdebstrap makes the base images; gcc links the pause binary.
image_pkgs=()
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || image_pkgs+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || image_pkgs+=(mmdebstrap)
command -v gcc >/dev/null 2>&1 && [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || image_pkgs+=(gcc libc6-dev)
[ ${#image_pkgs[@]} = 0 ] || apt_install "${image_pkgs[@]}"
go_install kube-score github.com/zegl/kube-score/cmd/kube-score "$KUBE_SCORE_VERSION" "-s -w -X main.version=$KUBE_SCORE_VERSION"
link "$cache/bin/kube-score-$KUBE_SCORE_VERSION/kube-score" kube-score

if [ "$did_something" = 0 ]; then
  echo "make tools: toolchain up to date in $bin (Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, Kafka $KAFKA_VERSION, Helm $HELM_VERSION); nothing to do"
else
  echo "make tools: toolchain ready in $bin"
fi
