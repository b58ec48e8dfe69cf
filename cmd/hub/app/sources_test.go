package app

import (
	"slices"
	"strings"
	"testing"
)

func TestParseSources(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "kubeconfig", want: []string{"kubeconfig"}},
		{in: "kubeconfig, gkehub,kind", want: []string{"kubeconfig", "gkehub", "kind"}},
		{in: "kind", want: []string{"kind"}},
		{in: "gke", err: `unknown cluster source "gke"`},
		{in: "kind,kind", err: "given twice"},
		{in: " , ", err: "no cluster source"},
	} {
		got, err := ParseSources(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSources(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseSources(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestDiscoverySourcesNeedAProject: gkehub without a project is refused when the hub is
// built, not when it first polls.
func TestDiscoverySourcesNeedAProject(t *testing.T) {
	if _, _, err := discoverySources(HubOptions{Sources: []string{SourceGKEHub}}, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "Project is required") {
		t.Errorf("err %v", err)
	}
	providers, sources, err := discoverySources(HubOptions{Sources: []string{SourceKubeconfig, SourceKind}}, nil, nil, nil)
	if err != nil || len(providers) != 1 || len(sources) != 1 || sources[0].Name() != "kind" {
		t.Errorf("kubeconfig+kind: %d providers, %v sources, %v", len(providers), sources, err)
	}
}
