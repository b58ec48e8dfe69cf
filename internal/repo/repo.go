// Package repo finds what the local fleet, fleetctl and the tests read from a checkout of
// the module: its root folder, the control-plane binaries and the CRD folders.
package repo

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ModulePath is the module whose go.mod marks the root.
const ModulePath = "github.com/inferfleet/inferfleet"

// Root walks up from the working directory to the go.mod of ModulePath and returns its
// folder. Other go.mod files on the way (hack/helm, say) are passed over.
func Root() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == "module" && f[1] == ModulePath {
					return d, nil
				}
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of %s above %s", ModulePath, wd)
		}
	}
}

// BinDir is where the control-plane binaries (`make bins`) live: $INFERFLEET_BIN_DIR, else
// bin/ under Root.
func BinDir() (string, error) {
	if d := os.Getenv("INFERFLEET_BIN_DIR"); d != "" {
		return d, nil
	}
	root, err := Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin"), nil
}

// ClusterInventoryCRDDir holds SIG Multicluster's ClusterProfile CRD (copied by
// hack/external-crds.sh): a cluster manager installs it, so it is not in CRDDirs; tests of
// the clusterprofile source add it.
func ClusterInventoryCRDDir(root string) string {
	return filepath.Join(root, "config", "crd", "external", "cluster-inventory")
}

// CRDDirs are the folders under root of every CRD the hub and members use: ours, the GKE
// fixtures and the external ones hack/external-crds.sh copies from the pinned modules.
// Folders that do not exist are left out.
func CRDDirs(root string) []string {
	var dirs []string
	for _, d := range []string{
		filepath.Join("config", "crd", "bases"),
		filepath.Join("config", "crd", "third-party"),
		filepath.Join("config", "crd", "external", "gateway-api"),
		filepath.Join("config", "crd", "external", "inference-extension"),
	} {
		if st, err := os.Stat(filepath.Join(root, d)); err == nil && st.IsDir() {
			dirs = append(dirs, filepath.Join(root, d))
		}
	}
	return dirs
}
