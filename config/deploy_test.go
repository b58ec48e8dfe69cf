package config_test

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/fleet"
)

// TestDockerfileBuildsLikeMake keeps the image's go build flags equal to the Makefile's and
// runs that exact build, since no container engine is at hand to build the image itself.
func TestDockerfileBuildsLikeMake(t *testing.T) {
	root := framework.Root()
	mk, _ := os.ReadFile(filepath.Join(root, "Makefile"))
	df, _ := os.ReadFile(filepath.Join(root, "Dockerfile"))
	flags := regexp.MustCompile(`(?m)^HUB_BUILD_FLAGS := (.*)$`).FindStringSubmatch(string(mk))
	stamp := regexp.MustCompile(`(?m)^VERSION_LDFLAGS := (.*)$`).FindStringSubmatch(string(mk))
	build := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build (.*) -o /hub \./cmd/hub)$`).FindStringSubmatch(string(df))
	if flags == nil || build == nil || stamp == nil {
		t.Fatalf("Makefile HUB_BUILD_FLAGS or VERSION_LDFLAGS, or the Dockerfile's go build line not found")
	}
	// The Makefile's $(VERSION) is the Dockerfile's build argument ${VERSION}.
	mkFlags := strings.ReplaceAll(strings.ReplaceAll(flags[1], "$(VERSION_LDFLAGS)", stamp[1]), "$(VERSION)", "${VERSION}")
	if strings.TrimSpace(mkFlags) != strings.TrimSpace(build[2]) {
		t.Fatalf("Dockerfile builds with %q, the Makefile with %q", build[2], mkFlags)
	}
	// The image's build, run by a shell as the Dockerfile's RUN is, stamps the version.
	out := filepath.Join(t.TempDir(), "hub")
	cmd := exec.Command("sh", "-c", "go build "+build[2]+" -o "+out+" ./cmd/hub")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "VERSION=v9.8.7-test")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the image's build fails: %v\n%s", err, b)
	}
	if b, err := exec.Command(out, "--version").Output(); err != nil || !strings.HasPrefix(string(b), "inferfleet hub v9.8.7-test (") {
		t.Errorf("the image's hub is not stamped with its version: %v\n%s", err, b)
	}
	if !strings.Contains(string(df), "distroless/static:nonroot") || !strings.Contains(string(df), "USER 65532") {
		t.Error("the image must run as non-root on distroless static")
	}
}

// TestInstallManifests decodes every install manifest and checks that each kustomization
// names files that exist.
func TestInstallManifests(t *testing.T) {
	root := framework.Root()
	for _, dir := range []string{"default", "manager", "rbac", "admission", "prometheus", "networkpolicy"} {
		files, _ := filepath.Glob(filepath.Join(root, "config", dir, "*.yaml"))
		if len(files) == 0 {
			t.Fatalf("no manifests in config/%s", dir)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.yaml") { // promtool's rule tests
				continue
			}
			raw, _ := os.ReadFile(f)
			if filepath.Base(f) == "kustomization.yaml" {
				var k struct{ Resources []string }
				if err := yaml.Unmarshal(raw, &k); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				for _, r := range k.Resources {
					if _, err := os.Stat(filepath.Join(filepath.Dir(f), r)); err != nil {
						t.Errorf("%s names %s, which does not exist", f, r)
					}
				}
				continue
			}
			docs := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(raw)), 4096)
			for {
				u := &unstructured.Unstructured{}
				if err := docs.Decode(&u.Object); err != nil {
					break
				}
				if u.GetKind() == "" || u.GetName() == "" {
					t.Errorf("%s holds an object without kind or name", f)
				}
			}
		}
	}
}

// TestHubSecretsAccessIsReadAndPatch checks the least-privilege promise of docs/security.md:
// Secrets are read and patched cluster-wide, created and deleted only in the hub's own
// namespace (the registrations discovery writes).
func TestHubSecretsAccessIsReadAndPatch(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(framework.Root(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type role struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Rules []struct {
			APIGroups []string `json:"apiGroups"`
			Resources []string `json:"resources"`
			Verbs     []string `json:"verbs"`
		} `json:"rules"`
	}
	want := map[string]string{"ClusterRole": "get,list,patch,watch", "Role/" + fleet.RegistrationNamespace: "create,delete"}
	got := map[string]string{}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var r role
		if err := yaml.Unmarshal([]byte(doc), &r); err != nil {
			t.Fatal(err)
		}
		where := r.Kind
		if r.Kind == "Role" {
			where += "/" + r.Metadata.Namespace
		}
		for _, rule := range r.Rules {
			for _, res := range rule.Resources {
				if res == "*" {
					t.Errorf("wildcard resource in %s %+v", where, rule)
				}
				if res == "secrets" {
					got[where] = strings.Join(rule.Verbs, ",")
				}
			}
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("secrets verbs %v, want %v", got, want)
	}
}

// TestDashboardUsesExportedMetrics checks that every metric the dashboard queries exists.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(framework.Root(), "config", "grafana", "inferfleet.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := yaml.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	known := map[string]bool{}
	for _, c := range append(controllers.Collectors(), fleet.Collectors()...) {
		ch := make(chan *prometheus.Desc, 8)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			known[regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(d.String())[1]] = true
		}
	}
	for _, m := range regexp.MustCompile(`inferfleet_[a-z_]+`).FindAllString(string(raw), -1) {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
		if !known[base] {
			t.Errorf("dashboard queries %s, which the hub does not export", m)
		}
	}
}
