package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/resource"
	"sigs.k8s.io/yaml"
)

func writeClusters(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "clusters.yaml")
	data := "- {name: gke-west, region: europe-west3, labels: {tier: gpu}}\n- {name: gke-east, region: us-east4, labels: {tier: gpu}}\n- {name: cpu-only, region: us-east4}\n"
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const sample = "../../config/samples/fleet_v1alpha1_two-region-h100.yaml"

// files is -f with the given paths.
func files(paths ...string) resource.FilenameOptions {
	return resource.FilenameOptions{Filenames: paths}
}

func TestRenderYAML(t *testing.T) {
	var out bytes.Buffer
	if err := runRender(&out, renderOptions{files: files(sample), clusters: writeClusters(t), output: "yaml"}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	west, east := strings.Index(s, "# cluster: gke-west\n"), strings.Index(s, "# cluster: gke-east\n")
	if west != 0 || east < 0 {
		t.Fatalf("want gke-west first, then gke-east; got positions %d %d", west, east)
	}
	if strings.Contains(s, "# cluster: cpu-only") {
		t.Error("rendered objects for a cluster the placement does not select")
	}
	// Each cluster gets half of the 6 replicas, and the stream parses back document by document.
	if n := strings.Count(s, "\n  replicas: 3\n"); n != 2 {
		t.Errorf("want two model Deployments with 3 replicas, found %d", n)
	}
	if !strings.Contains(s, base64.StdEncoding.EncodeToString([]byte("<copied from the hub's Secret default/hf-token>"))) {
		t.Error("token Secret placeholder missing")
	}
	for i, doc := range strings.Split(s, "\n---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil || m["kind"] == nil {
			t.Fatalf("document %d does not parse as an object: %v", i, err)
		}
	}
}

func TestRenderJSON(t *testing.T) {
	var out bytes.Buffer
	if err := runRender(&out, renderOptions{files: files(sample), clusters: writeClusters(t), output: "json"}); err != nil {
		t.Fatal(err)
	}
	var doc map[string][]map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc) != 2 || len(doc["gke-west"]) == 0 || len(doc["gke-west"]) != len(doc["gke-east"]) {
		t.Fatalf("clusters %v", len(doc))
	}
	kinds := map[string]bool{}
	for _, o := range doc["gke-west"] {
		kinds[o["kind"].(string)] = true
	}
	for _, k := range []string{"Deployment", "InferencePool", "InferenceObjective", "AutoscalingMetric", "ConfigMap", "Secret", "Service", "ServiceAccount"} {
		if !kinds[k] {
			t.Errorf("no %s rendered", k)
		}
	}
}

func TestRenderRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: fleet.inferfleet.dev/v1alpha1\nkind: FleetInferenceService\nmetadata: {name: x}\nspec:\n  model: {name: m, accelerator: {type: tpu-v5-lite-podslice}}\n  replicas: 1\n  placement: {clusters: [{name: gke-west}]}\n"), 0o644)
	err := runRender(&bytes.Buffer{}, renderOptions{files: files(bad), clusters: writeClusters(t), output: "yaml"})
	if err == nil || !strings.Contains(err.Error(), "topology") {
		t.Errorf("invalid spec: want an error naming topology, got %v", err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	os.WriteFile(missing, []byte("apiVersion: fleet.inferfleet.dev/v1alpha1\nkind: FleetInferenceService\nmetadata: {name: x}\nspec:\n  model: {name: m}\n  replicas: 1\n  placement: {clusters: [{name: nowhere}]}\n"), 0o644)
	err = runRender(&bytes.Buffer{}, renderOptions{files: files(missing), clusters: writeClusters(t), output: "yaml"})
	if err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("unknown cluster: want an error naming it, got %v", err)
	}
	err = runRender(&bytes.Buffer{}, renderOptions{files: files(sample), clusters: writeClusters(t), output: "xml"})
	if err == nil {
		t.Error("accepted -o xml")
	}
}

func TestRenderConfigCluster(t *testing.T) {
	var out bytes.Buffer
	if err := runRender(&out, renderOptions{files: files(sample), clusters: writeClusters(t), configCluster: "gke-west", output: "json"}); err != nil {
		t.Fatal(err)
	}
	var doc map[string][]map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range doc["gke-west"] {
		kinds[o["kind"].(string)]++
	}
	// The config cluster is also a member here: it holds both sets.
	if kinds["Gateway"] != 1 || kinds["HTTPRoute"] != 1 || kinds["GCPBackendPolicy"] != 2 || kinds["HealthCheckPolicy"] != 2 || kinds["Deployment"] != 2 {
		t.Errorf("config cluster objects %v", kinds)
	}
	if kinds := doc["gke-east"]; len(kinds) == 0 {
		t.Error("member gke-east lost its objects")
	}
	gw := doc["gke-west"][0]
	addrs := gw["spec"].(map[string]any)["addresses"].([]any)
	if gw["kind"] != "Gateway" || len(addrs) != 2 {
		t.Errorf("gateway first with both regions, got %v", gw)
	}
	if err := runRender(&bytes.Buffer{}, renderOptions{files: files(sample), clusters: writeClusters(t), configCluster: "nowhere", output: "json"}); err == nil {
		t.Error("accepted an unknown config cluster")
	}
}

// TestRenderRejectsContradictoryRouting runs the routing contradictions the API server
// rejects, and the one only a resolved placement shows (a regional selector that finds two
// clusters), through fleetctl render: each is an error naming the field, and nothing is
// printed.
func TestRenderRejectsContradictoryRouting(t *testing.T) {
	const head = "apiVersion: fleet.inferfleet.dev/v1alpha1\nkind: FleetInferenceService\nmetadata: {name: x}\nspec:\n  model: {name: m, accelerator: {type: nvidia-h100-80gb}}\n  replicas: 2\n"
	cases := []struct {
		name, spec, field string
	}{
		{"regional class over two clusters", "  placement: {clusters: [{name: gke-west}, {name: gke-east}]}\n  gateway: {className: gke-l7-regional-external-managed}\n", "spec.placement.clusters"},
		{"mode Regional with a multi-cluster class", "  placement: {clusters: [{name: gke-west}]}\n  gateway: {mode: Regional, className: gke-l7-cross-regional-internal-managed-mc}\n", "spec.gateway.className"},
		{"import route with a regional class", "  placement: {clusters: [{name: gke-west}]}\n  gateway: {mode: MultiCluster, className: gke-l7-rilb}\n", "spec.gateway.className"},
		{"regional selector over two clusters", "  placement: {clusterSelector: {matchLabels: {tier: gpu}}}\n  gateway: {mode: Regional}\n", "spec.placement"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "fis.yaml")
			if err := os.WriteFile(f, []byte(head+tc.spec), 0o644); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err := runRender(&out, renderOptions{files: files(f), clusters: writeClusters(t), output: "yaml"})
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("want an error naming %s, got %v", tc.field, err)
			}
			if out.Len() != 0 {
				t.Errorf("printed %d bytes for a refused service", out.Len())
			}
		})
	}
	// The same service on one cluster renders its regional Gateway into that member.
	f := filepath.Join(t.TempDir(), "fis.yaml")
	if err := os.WriteFile(f, []byte(head+"  placement: {clusters: [{name: gke-east}]}\n  gateway: {mode: Regional, name: inference-gateway}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runRender(&out, renderOptions{files: files(f), clusters: writeClusters(t), configCluster: "gke-west", output: "json"}); err != nil {
		t.Fatal(err)
	}
	var doc map[string][]map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	kinds := func(cluster string) map[string]bool {
		k := map[string]bool{}
		for _, o := range doc[cluster] {
			k[o["kind"].(string)] = true
		}
		return k
	}
	if !kinds("gke-east")["Gateway"] || !kinds("gke-east")["HTTPRoute"] || kinds("gke-west")["Gateway"] {
		t.Errorf("regional gateway rendered in the wrong cluster: gke-east %v, config cluster gke-west %v", kinds("gke-east"), kinds("gke-west"))
	}
}
