// Package config_test fails when a generated file under config/ or api/ is stale: run
// `make manifests generate` and commit the result.
package config_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inferfleet/inferfleet/e2e/framework"
)

// controllerGen is the pinned generator, as the Makefile runs it.
const controllerGen = "sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0"

func generate(t *testing.T, root string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"run", controllerGen}, args...)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// sameFiles asserts every file in want exists in got with identical content, and no more.
func sameFiles(t *testing.T, want, got string) {
	t.Helper()
	wantFiles, _ := filepath.Glob(filepath.Join(want, "*"))
	gotFiles, _ := filepath.Glob(filepath.Join(got, "*"))
	if len(wantFiles) == 0 {
		t.Fatalf("generator wrote nothing into %s", want)
	}
	if len(wantFiles) != len(gotFiles) {
		t.Errorf("%s has %d files, generation gives %d: run `make manifests generate`", got, len(gotFiles), len(wantFiles))
	}
	for _, w := range wantFiles {
		g := filepath.Join(got, filepath.Base(w))
		a, _ := os.ReadFile(w)
		b, err := os.ReadFile(g)
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s is stale: run `make manifests generate`", g)
		}
	}
}

func TestGeneratedFilesAreCurrent(t *testing.T) {
	root := framework.Root()
	out := t.TempDir()
	generate(t, root, "object:headerFile=hack/boilerplate.go.txt", "paths=./api/...", "output:object:dir="+filepath.Join(out, "object"))
	generate(t, root, "crd:allowDangerousTypes=true", "paths=./api/...", "output:crd:dir="+filepath.Join(out, "crd"))
	generate(t, root, "rbac:roleName=inferfleet-hub", "paths=./...", "output:rbac:dir="+filepath.Join(out, "rbac"))

	a, _ := os.ReadFile(filepath.Join(out, "object", "zz_generated.deepcopy.go"))
	b, _ := os.ReadFile(filepath.Join(root, "api", "v1alpha1", "zz_generated.deepcopy.go"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("api/v1alpha1/zz_generated.deepcopy.go is stale: run `make generate`")
	}
	sameFiles(t, filepath.Join(out, "crd"), filepath.Join(root, "config", "crd", "bases"))
	a, _ = os.ReadFile(filepath.Join(out, "rbac", "role.yaml"))
	b, _ = os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("config/rbac/role.yaml is stale: run `make manifests`")
	}
}

// TestExternalCRDsMatchModules checks config/crd/external against the pinned modules.
func TestExternalCRDsMatchModules(t *testing.T) {
	root := framework.Root()
	for dir, src := range map[string]string{
		"gateway-api":         "sigs.k8s.io/gateway-api",
		"inference-extension": "sigs.k8s.io/gateway-api-inference-extension",
		"cluster-inventory":   "sigs.k8s.io/cluster-inventory-api",
	} {
		cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", src)
		cmd.Dir = root
		modDir, err := cmd.Output()
		if err != nil {
			t.Fatalf("locate %s: %v", src, err)
		}
		files, _ := filepath.Glob(filepath.Join(root, "config", "crd", "external", dir, "*.yaml"))
		if len(files) == 0 {
			t.Fatalf("no CRDs in config/crd/external/%s: run `make manifests`", dir)
		}
		for _, f := range files {
			upstream := filepath.Join(strings.TrimSpace(string(modDir)), "config", "crd", "standard", filepath.Base(f))
			if dir == "inference-extension" || dir == "cluster-inventory" {
				upstream = filepath.Join(strings.TrimSpace(string(modDir)), "config", "crd", "bases", filepath.Base(f))
			}
			a, _ := os.ReadFile(f)
			b, err := os.ReadFile(upstream)
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("%s differs from %s: run `make manifests`", f, upstream)
			}
		}
	}
}
