package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// writeKubeconfig writes a kubeconfig with one context per name (cluster and user of the
// same name, server https://NAME.test) and the given current context.
func writeKubeconfig(t *testing.T, current string, names ...string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	for _, n := range names {
		kc.Clusters[n] = &clientcmdapi.Cluster{Server: "https://" + n + ".test"}
		kc.AuthInfos[n] = &clientcmdapi.AuthInfo{Token: n}
		kc.Contexts[n] = &clientcmdapi.Context{Cluster: n, AuthInfo: n}
	}
	kc.CurrentContext = current
	b, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), strings.Join(names, "-")+".kubeconfig")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHubKubeconfig: --kubeconfig takes one file or a path list merged like $KUBECONFIG,
// and --context picks a context from the merged files.
func TestHubKubeconfig(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	other := writeKubeconfig(t, "", "other")
	hub := writeKubeconfig(t, "hub", "hub")
	missing := filepath.Join(t.TempDir(), "missing")
	list := func(paths ...string) string { return strings.Join(paths, string(filepath.ListSeparator)) }
	for _, tc := range []struct {
		kubeconfig, context, host, err string
	}{
		{kubeconfig: hub, host: "https://hub.test"},
		{kubeconfig: list(other, hub), host: "https://hub.test"},
		{kubeconfig: list(other, hub), context: "other", host: "https://other.test"},
		{kubeconfig: list(missing, hub), host: "https://hub.test"},
		{kubeconfig: list(hub, ""), host: "https://hub.test"},
		{kubeconfig: missing, err: "missing"},
		{kubeconfig: hub, context: "absent", err: "absent"},
	} {
		t.Setenv("KUBECONFIG", "")
		kf := newKubeFlags()
		*kf.KubeConfig, *kf.Context = tc.kubeconfig, tc.context
		cfg, err := kf.restConfig()
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("--kubeconfig %s --context %q: err %v, want one naming %q", tc.kubeconfig, tc.context, err, tc.err)
			}
		case err != nil:
			t.Errorf("--kubeconfig %s --context %q: %v", tc.kubeconfig, tc.context, err)
		case cfg.Host != tc.host:
			t.Errorf("--kubeconfig %s --context %q: host %s, want %s", tc.kubeconfig, tc.context, cfg.Host, tc.host)
		}
	}

	// Without --kubeconfig, $KUBECONFIG's path list.
	t.Setenv("KUBECONFIG", list(other, hub))
	if cfg, err := newKubeFlags().restConfig(); err != nil || cfg.Host != "https://hub.test" {
		t.Errorf("$KUBECONFIG path list: %v %v", cfg, err)
	}
}

// TestHubFlagsEverywhere: every command that talks to the hub takes kubectl's global
// flags, the same ones, from the root.
func TestHubFlagsEverywhere(t *testing.T) {
	root := newRootCmd()
	for _, path := range [][]string{{"status"}, {"clusters"}, {"drill", "region"}, {"cluster", "join"}, {"cluster", "unjoin"},
		{"cluster", "cordon"}, {"cluster", "uncordon"}, {"version"}, {"render"}} {
		cmd, _, err := root.Find(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, flag := range []string{"kubeconfig", "context", "namespace", "as", "request-timeout", "server", "token"} {
			f := cmd.InheritedFlags().Lookup(flag)
			if f == nil {
				t.Errorf("%v has no --%s", path, flag)
				continue
			}
			if f != root.PersistentFlags().Lookup(flag) {
				t.Errorf("%v --%s is not the root's flag", path, flag)
			}
		}
	}
	if root.PersistentFlags().ShorthandLookup("n") == nil {
		t.Error("-n is not kubectl's namespace flag")
	}
}
