package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// fuzzEnvVar carries the fuzz coordinator's API server to its workers.
const fuzzEnvVar = "INFERFLEET_FUZZ_KUBECONFIG"

// ForFuzz is Start for a fuzz target. Under go test -fuzz, the coordinator process starts
// the API server and its workers (separate processes, started after it and killed at the
// end without their cleanups) connect to it: a worker starts no process that could outlive
// it. Without -fuzz it is Start.
func ForFuzz(f *testing.F, crdDirs []string) *Env {
	f.Helper()
	if path := os.Getenv(fuzzEnvVar); path != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			f.Fatalf("the fuzz coordinator's API server: %v", err)
		}
		c, err := client.New(cfg, client.Options{Scheme: Scheme()})
		if err != nil {
			f.Fatal(err)
		}
		return &Env{Config: cfg, Client: c}
	}
	env := Start(f, crdDirs)
	kc, err := Kubeconfig(env.Config, "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		f.Fatal(err)
	}
	f.Setenv(fuzzEnvVar, path)
	return env
}
