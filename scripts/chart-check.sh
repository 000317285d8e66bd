#!/usr/bin/env bash
# `make lint-chart`: checks the Helm chart in helm/foodfast.
#
# For the default values and for helm/foodfast/ci/production-values.yaml:
# `helm lint --strict`, `helm template`, and kubeconform -strict on what was
# rendered (hooks included), against Kubernetes JSON schemas on disk.
#
# Every tool is pinned and cached under .local/ (gitignored), from registries
# only: helm and kubeconform built from the Go module proxy into .local/bin;
# the Kubernetes schemas from the PyPI wheel kubernetes-validate (hash-pinned),
# whose $refs point at https://kubernetes.io/api/... and are rewritten here to
# the local files (kubeconform's default, GitHub, is not reachable from CI);
# the ServiceMonitor schema converted from the CRD that the Go module
# github.com/prometheus-operator/prometheus-operator ships. Quiet on success
# but for a short summary; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

HELM_MODULE=helm.sh/helm/v4
HELM_VERSION=v4.3.2
KUBECONFORM_MODULE=github.com/yannh/kubeconform
KUBECONFORM_VERSION=v0.8.0
K8S_VERSION=1.34.0 # schemas validated against, and --kube-version of helm template
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VALIDATE_SHA256=85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9
PYYAML_VERSION=6.0.3
PROMETHEUS_OPERATOR_MODULE=github.com/prometheus-operator/prometheus-operator
PROMETHEUS_OPERATOR_VERSION=v0.85.0

chart=helm/foodfast
release=foodfast
bin=$PWD/.local/bin
cache=$PWD/.local/chart-check
venv=$PWD/.local/venv-chart
k8s_schemas=$cache/schemas/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION/v$K8S_VERSION-local-strict
crd_schemas=$cache/schemas/crds-prometheus-operator-$PROMETHEUS_OPERATOR_VERSION
work=$(mktemp -d)
builds=() build_names=()
cleanup() {
    local pid
    for pid in "${builds[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$bin" "$cache"

say() { echo "chart-check: $*"; }
die() {
    echo "chart-check: FAILED: $*" >&2
    exit 1
}
# Runs a command silently; on failure shows its output and stops.
# Its output stays in $out.
quiet() {
    local what=$1
    shift
    out=$(mktemp -p "$work")
    if ! "$@" >"$out" 2>&1; then
        cat "$out" >&2
        die "$what"
    fi
}

# The module version a Go binary was built from ("" when absent).
built_version() {
    [[ -x $1 ]] || return 0
    go version -m "$1" 2>/dev/null | awk -v mod="$2" '$1 == "mod" && $2 == mod { print $3 }'
}

# Builds in the background (helm takes minutes on a fresh machine), waited
# for before the checks; stopped if the script stops first.
go_tool() { # module, version, package, binary
    if [[ $(built_version "$bin/$4" "$1") != "$2" ]]; then
        GOBIN="$bin" GOFLAGS=-buildvcs=false go install -ldflags="-s -w" "$3@$2" >"$work/$4.log" 2>&1 &
        builds+=("$!")
        build_names+=("$4")
    fi
}
go_tool "$HELM_MODULE" "$HELM_VERSION" "$HELM_MODULE/cmd/helm" helm
go_tool "$KUBECONFORM_MODULE" "$KUBECONFORM_VERSION" "$KUBECONFORM_MODULE/cmd/kubeconform" kubeconform
helm=$bin/helm
kubeconform=$bin/kubeconform

# A venv of our own: pip for the wheel, PyYAML for the CRD.
if [[ ! -f $venv/.installed-$PYYAML_VERSION ]]; then
    quiet "python3 -m venv $venv" python3 -m venv "$venv"
    quiet "pip install PyYAML==$PYYAML_VERSION" \
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "PyYAML==$PYYAML_VERSION"
    touch "$venv/.installed-$PYYAML_VERSION"
fi
python=$venv/bin/python

# Kubernetes schemas: the *-local-strict set (additionalProperties: false)
# for $K8S_VERSION, named as kubeconform expects: deployment-apps-v1.json.
if [[ ! -f $k8s_schemas/.complete ]]; then
    echo "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION --hash=sha256:$KUBERNETES_VALIDATE_SHA256" >"$work/requirements.txt"
    quiet "pip download kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
        "$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --require-hashes -r "$work/requirements.txt" -d "$work/wheel"
    rm -rf "$k8s_schemas"
    quiet "extract the Kubernetes $K8S_VERSION schemas" "$python" - "$work"/wheel/*.whl "v$K8S_VERSION-local-strict" "$k8s_schemas" <<'EOF'
import json, os, sys, zipfile
wheel, version_dir, out = sys.argv[1:]
prefix = f"kubernetes_validate/kubernetes-json-schema/{version_dir}/"
os.makedirs(out)
count = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if not name.startswith(prefix) or not name.endswith(".json"):
            continue
        schema = json.loads(z.read(name))
        # Ids and refs are https://kubernetes.io/api/...: without the ids, the
        # refs resolve against the file itself, and "_definitions.json" is
        # the file beside it.
        schema.pop("$id", None)
        text = json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#')
        if '"/api/' in text:
            sys.exit(f"{name}: a $ref this script does not know how to localise")
        with open(os.path.join(out, name[len(prefix):]), "w") as f:
            f.write(text)
        count += 1
if count < 100 or not os.path.exists(os.path.join(out, "_definitions.json")):
    sys.exit(f"{wheel}: no schema set {version_dir} ({count} files)")
EOF
    touch "$k8s_schemas/.complete"
fi

# The ServiceMonitor: its CRD's openAPIV3Schema as a JSON schema, strict the
# way kubeconform's openapi2jsonschema makes it (no unknown fields where the
# CRD lists the fields). Without it, that kind alone is skipped, and said so.
skip_kinds=
if [[ ! -f $crd_schemas/.complete ]]; then
    if (cd "$work" && go mod download -json "$PROMETHEUS_OPERATOR_MODULE@$PROMETHEUS_OPERATOR_VERSION") >"$work/mod.json" 2>"$work/mod.err"; then
        crd_dir=$("$python" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])' <"$work/mod.json")/example/prometheus-operator-crd
        rm -rf "$crd_schemas"
        quiet "convert the ServiceMonitor CRD" "$python" - "$crd_dir/monitoring.coreos.com_servicemonitors.yaml" "$crd_schemas" <<'EOF'
import json, os, sys, yaml
crd_file, out = sys.argv[1:]
with open(crd_file) as f:
    crd = yaml.safe_load(f)
group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"].lower()

def strict(node):
    if isinstance(node, dict):
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)

os.makedirs(os.path.join(out, group))
for version in crd["spec"]["versions"]:
    schema = version["schema"]["openAPIV3Schema"]
    strict(schema)
    with open(os.path.join(out, group, f"{kind}_{version['name']}.json"), "w") as f:
        json.dump(schema, f)
EOF
        touch "$crd_schemas/.complete"
    else
        skip_kinds=ServiceMonitor
        reason=$("$python" -c 'import json,sys; print(json.load(sys.stdin).get("Error", ""))' <"$work/mod.json" 2>/dev/null) || true
        say "ServiceMonitor not validated: $PROMETHEUS_OPERATOR_MODULE@$PROMETHEUS_OPERATOR_VERSION could not be downloaded (${reason:-$(tail -1 "$work/mod.err")})"
    fi
fi

for i in "${!builds[@]}"; do
    if ! wait "${builds[$i]}"; then
        cat "$work/${build_names[$i]}.log" >&2
        die "go install of ${build_names[$i]}"
    fi
done
builds=()

# Each case: a name and the values files it adds to the defaults.
check() {
    local name=$1
    shift
    local args=()
    for values in "$@"; do args+=(--values "$values"); done
    quiet "helm lint --strict ($name)" "$helm" lint --strict "$chart" "${args[@]}"
    quiet "helm template ($name)" "$helm" template "$release" "$chart" --namespace foodfast \
        --kube-version "$K8S_VERSION" "${args[@]}"
    local rendered=$cache/rendered/$name.yaml
    mkdir -p "$cache/rendered"
    cp "$out" "$rendered"
    quiet "kubeconform ($name) on the rendered manifests, kept in ${rendered#"$PWD"/}" \
        "$kubeconform" -strict -summary -kubernetes-version "$K8S_VERSION" \
        -schema-location "$k8s_schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
        -schema-location "$crd_schemas/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
        ${skip_kinds:+-skip "$skip_kinds"} "$rendered"
    # "Summary: 12 resources found in 1 file - Valid: 12, Invalid: 0, Errors: 0, Skipped: 0"
    local summary
    summary=$(grep '^Summary:' "$out") || die "kubeconform ($name) printed no summary"
    local valid skipped
    valid=$(sed -E 's/.*Valid: ([0-9]+).*/\1/' <<<"$summary")
    skipped=$(sed -E 's/.*Skipped: ([0-9]+).*/\1/' <<<"$summary")
    if [[ -z $skip_kinds && $skipped != 0 ]]; then
        cat "$out" >&2
        die "kubeconform ($name) skipped $skipped resources"
    fi
    [[ $valid -gt 0 ]] || die "kubeconform ($name): nothing was validated"
    local kinds
    kinds=$(grep -E '^kind: ' "$rendered" | sed 's/kind: //' | sort | uniq -c | awk '{printf "%s%s×%s", sep, $2, $1; sep=", "}')
    say "$name: lint --strict ok; $valid resources valid ($kinds)"
}

check defaults
# The chart's own Secret carries every secret value the defaults set.
for key in FOODFAST_DATABASE_URL FOODFAST_REDIS_URL; do
    grep -q "^  $key: " "$cache/rendered/defaults.yaml" || die "defaults: the chart's Secret has no $key"
done
check production "$chart/ci/production-values.yaml"
crd_note=", ServiceMonitor CRD of prometheus-operator $PROMETHEUS_OPERATOR_VERSION"
[[ -z $skip_kinds ]] || crd_note=", ServiceMonitor skipped"
say "helm $HELM_VERSION, kubeconform $KUBECONFORM_VERSION -strict, Kubernetes $K8S_VERSION schemas of kubernetes-validate $KUBERNETES_VALIDATE_VERSION$crd_note"
