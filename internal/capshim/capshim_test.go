package capshim

import (
	"encoding/json"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/sys/capability"
)

const spec = `{"ociVersion":"1.2.0","process":{"args":["/sbin/init"],"oomScoreAdj":-998,"capabilities":{
 "bounding":["CAP_CHOWN","CAP_SYS_RESOURCE","CAP_SYS_ADMIN"],
 "effective":["CAP_CHOWN","CAP_SYS_RESOURCE"],
 "permitted":["CAP_SYS_RESOURCE","CAP_SYS_ADMIN"]}},
 "root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"pid"}]}}`

func TestStripRemovesOnlyTheDroppedCapabilities(t *testing.T) {
	out, changed, err := Strip([]byte(spec), Fix{Drop: []string{"CAP_SYS_RESOURCE"}})
	if err != nil || !changed {
		t.Fatalf("Strip: changed=%v err=%v", changed, err)
	}
	var got struct {
		OCIVersion string `json:"ociVersion"`
		Process    struct {
			Args []string            `json:"args"`
			Caps map[string][]string `json:"capabilities"`
		} `json:"process"`
		Linux struct {
			Namespaces []map[string]string `json:"namespaces"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"bounding":  {"CAP_CHOWN", "CAP_SYS_ADMIN"},
		"effective": {"CAP_CHOWN"},
		"permitted": {"CAP_SYS_ADMIN"},
	}
	for set, caps := range want {
		if !slices.Equal(got.Process.Caps[set], caps) {
			t.Errorf("%s = %v, want %v", set, got.Process.Caps[set], caps)
		}
	}
	if got.OCIVersion != "1.2.0" || got.Process.Args[0] != "/sbin/init" || got.Linux.Namespaces[0]["type"] != "pid" {
		t.Errorf("other fields were not kept: %s", out)
	}

	// An exec's process.json has the sets at its top level; nothing to drop leaves it as is.
	proc := `{"args":["sh"],"capabilities":{"bounding":["CAP_SYS_RESOURCE","CAP_KILL"]}}`
	out, changed, err = Strip([]byte(proc), Fix{Drop: []string{"CAP_SYS_RESOURCE"}})
	if err != nil || !changed || !strings.Contains(string(out), `"bounding":["CAP_KILL"]`) {
		t.Errorf("process.json: %s changed=%v err=%v", out, changed, err)
	}
	out, changed, _ = Strip([]byte(proc), For([]string{"CAP_BPF"}, 0))
	if changed || string(out) != proc {
		t.Errorf("nothing to drop changed the document: %s", out)
	}
}

func TestFilesFromRuncCommandLines(t *testing.T) {
	for _, c := range []struct {
		name string
		args string
		want []string
	}{
		{"dockerd create", "--root /var/run/docker/runtime-runc/moby --log /run/c/log.json --log-format json create --bundle /run/c/b1 --pid-file /run/c/pid abc", []string{"/run/c/b1/config.json"}},
		{"containerd shim create", "--root /run/containerd/runc/k8s.io --log /x/log.json --log-format json --systemd-cgroup create --bundle=/x/b2 --pid-file /x/pid def", []string{"/x/b2/config.json"}},
		{"run in the bundle", "run -d id", []string{"config.json"}},
		{"exec", "--root /r --log /l exec --process /tmp/runc-process1 --detach --pid-file /p id", []string{"/tmp/runc-process1"}},
		{"exec -p", "exec -p /tmp/p2 id", []string{"/tmp/p2"}},
		{"start", "--root /r start id", nil},
		{"delete", "--root /r --log /l delete --force id", nil},
	} {
		if got := Files(strings.Fields(c.args)); !slices.Equal(got, c.want) {
			t.Errorf("%s: Files = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestUnavailableMatchesTheBoundingSet(t *testing.T) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var bnd uint64
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			bnd, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	last, _ := capability.LastCap()
	missing := int(last) + 1 - bits.OnesCount64(bnd&(1<<(uint(last)+1)-1))
	got, err := Unavailable()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != missing {
		t.Errorf("Unavailable = %v, want %d capabilities (CapBnd %x)", got, missing, bnd)
	}
	for _, c := range got {
		if !strings.HasPrefix(c, "CAP_") {
			t.Errorf("%q is not in OCI spelling", c)
		}
	}
}

func TestRewriteInPlace(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "config.json")
	if err := os.WriteFile(f, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Rewrite(Files([]string{"create", "--bundle", dir, "id"}), For([]string{"CAP_SYS_RESOURCE"}, 0)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f)
	if strings.Contains(string(b), "CAP_SYS_RESOURCE") {
		t.Errorf("config.json still grants CAP_SYS_RESOURCE: %s", b)
	}
	// Without CAP_SYS_RESOURCE, runc's init cannot lower oom_score_adj below where it
	// starts: the spec asks for no lower.
	if !strings.Contains(string(b), `"oomScoreAdj":0`) {
		t.Errorf("oomScoreAdj not raised to 0: %s", b)
	}
}

func TestOOMScoreAdjKeptWhereTheCapabilityIsThere(t *testing.T) {
	out, _, err := Strip([]byte(spec), For([]string{"CAP_BPF"}, 0))
	if err != nil || !strings.Contains(string(out), `"oomScoreAdj":-998`) {
		t.Errorf("a machine with CAP_SYS_RESOURCE lost the requested oomScoreAdj: %s %v", out, err)
	}
	out, _, _ = Strip([]byte(spec), For([]string{"CAP_SYS_RESOURCE"}, -999))
	if !strings.Contains(string(out), `"oomScoreAdj":-998`) {
		t.Errorf("an oomScoreAdj above the floor was changed: %s", out)
	}
}
