package render

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// chartDir is a chart of the pinned Inference Extension module, from the module cache.
func chartDir(t *testing.T, chart string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api-inference-extension").Output()
	if err != nil {
		t.Fatalf("go list the inference extension module: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "charts", chart)
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		t.Fatalf("chart %s not in the module cache (go mod download): %v", chart, err)
	}
	return dir
}

// helmTemplate renders a chart with bin/helm (make bins) and decodes its objects.
func helmTemplate(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	bin := filepath.Join(testenv.BinDir(), "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not found: run `make bins`", bin)
	}
	home := t.TempDir()
	cmd := exec.Command(bin, append([]string{"template"}, args...)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %v: %v: %s", args, err, stderr.String())
	}
	var objs []map[string]any
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		var o map[string]any
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatal(err)
		}
		if len(o) > 0 {
			objs = append(objs, o)
		}
	}
}

// pruneEmpty drops nil values and empty maps and lists, which typed objects carry and
// charts leave out.
func pruneEmpty(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if p := pruneEmpty(e); p != nil {
				out[k] = p
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		if len(x) == 0 {
			return nil
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = pruneEmpty(e)
		}
		return out
	}
	return v
}

// TestBodyBasedRouterMatchesChart renders the body-based-routing chart of the pinned
// Inference Extension (v1.5.0) with helm for both providers and compares every object with
// ours, field for field; only the hub's labels and the documented HealthCheckPolicy name
// differ.
func TestBodyBasedRouterMatchesChart(t *testing.T) {
	dir := chartDir(t, "body-based-routing")
	for _, provider := range []v1alpha1.Provider{v1alpha1.ProviderGKE, v1alpha1.ProviderInferencePoolImport} {
		t.Run(string(provider), func(t *testing.T) {
			in := GatewayInput{Name: "inference-gateway", Namespace: "serving", Provider: provider, BodyBasedRouting: true}
			chartProvider := "none"
			if provider == v1alpha1.ProviderGKE {
				chartProvider = "gke"
			}
			chart := helmTemplate(t, in.Name, dir, "--namespace", in.Namespace,
				"--set", "bbr.name="+BodyBasedRouterName(in.Name), "--set", "provider.name="+chartProvider, "--set", "inferenceGateway.name="+in.Name)
			ours := map[string]map[string]any{}
			for _, o := range BodyBasedRouter(in) {
				u := jsonValue(t, o).(map[string]any)
				md := u["metadata"].(map[string]any)
				if !cmp.Equal(md["labels"], jsonValue(t, GatewayLabels(in.Name))) {
					t.Errorf("%s %s labels %v", u["kind"], md["name"], md["labels"])
				}
				delete(md, "labels")
				name := md["name"].(string)
				if u["kind"] == "HealthCheckPolicy" {
					name = "bbr-healthcheck" // the chart's fixed name
					md["name"] = name
				}
				ours[u["kind"].(string)+"/"+name] = pruneEmpty(u).(map[string]any)
			}
			if len(chart) != len(ours) {
				t.Errorf("the chart renders %d objects, we render %d", len(chart), len(ours))
			}
			for _, c := range chart {
				key := c["kind"].(string) + "/" + c["metadata"].(map[string]any)["name"].(string)
				got, ok := ours[key]
				if !ok {
					t.Errorf("the chart renders %s, we do not", key)
					continue
				}
				if diff := cmp.Diff(pruneEmpty(jsonValue(t, c)), got); diff != "" {
					t.Errorf("%s differs from the chart's (-chart +ours):\n%s", key, diff)
				}
			}
		})
	}
}
