// Package capshim lets privileged containers start on a machine whose capability bounding
// set lacks some capabilities (CAP_SYS_RESOURCE on some VMs): a privileged container asks
// for every capability, and runc fails with "unable to apply caps: operation not
// permitted". The shim sits in front of runc as a container runtime (dockerd --add-runtime,
// or containerd's runc BinaryName), removes from the bundle's config.json (and from an exec's
// process.json) the capabilities this machine cannot grant, keeps oomScoreAdj where it may
// be set without them, and then execs runc unchanged.
package capshim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/sys/capability"
)

// Unavailable lists, in OCI spelling (CAP_SYS_RESOURCE), the known capabilities missing from
// this process's bounding set.
func Unavailable() ([]string, error) {
	last, err := capability.LastCap()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range capability.ListKnown() {
		if c > last {
			continue
		}
		ok, err := capability.GetBound(c)
		if err != nil {
			return nil, err
		}
		if !ok {
			out = append(out, "CAP_"+strings.ToUpper(c.String()))
		}
	}
	return out, nil
}

// sets are the capability sets of an OCI process.
var sets = []string{"bounding", "effective", "inheritable", "permitted", "ambient"}

// Fix is what a rewrite changes.
type Fix struct {
	// Drop lists the capabilities to remove, in OCI spelling.
	Drop []string
	// MinOOMScoreAdj, when set, raises a lower oomScoreAdj to it: without CAP_SYS_RESOURCE a
	// process cannot lower its oom_score_adj (runc's init then dies with "failed to update
	// /proc/self/oom_score_adj: Permission denied").
	MinOOMScoreAdj *int
}

// For returns the fix for a machine that lacks the capabilities drop, whose processes
// start at oomScoreAdj.
func For(drop []string, oomScoreAdj int) Fix {
	f := Fix{Drop: drop}
	if slices.Contains(drop, "CAP_SYS_RESOURCE") {
		f.MinOOMScoreAdj = &oomScoreAdj
	}
	return f
}

// Strip applies fix to an OCI runtime spec (config.json) or process (process.json, as
// `runc exec --process` takes it): it removes fix.Drop from every capability set and
// raises oomScoreAdj to fix.MinOOMScoreAdj. Every other field is kept. It says whether
// anything changed.
func Strip(doc []byte, fix Fix) ([]byte, bool, error) {
	var obj map[string]any
	if err := json.Unmarshal(doc, &obj); err != nil {
		return nil, false, err
	}
	changed := fixProcess(obj, fix)
	if p, ok := obj["process"].(map[string]any); ok {
		changed = fixProcess(p, fix) || changed
	}
	if !changed {
		return doc, false, nil
	}
	out, err := json.Marshal(obj)
	return out, true, err
}

func fixProcess(p map[string]any, fix Fix) bool {
	changed := stripCaps(p["capabilities"], fix.Drop)
	if adj, ok := p["oomScoreAdj"].(float64); ok && fix.MinOOMScoreAdj != nil && adj < float64(*fix.MinOOMScoreAdj) {
		p["oomScoreAdj"], changed = *fix.MinOOMScoreAdj, true
	}
	return changed
}

func stripCaps(v any, drop []string) bool {
	caps, ok := v.(map[string]any)
	if !ok {
		return false
	}
	changed := false
	for _, s := range sets {
		list, ok := caps[s].([]any)
		if !ok {
			continue
		}
		kept := slices.DeleteFunc(slices.Clone(list), func(c any) bool {
			name, _ := c.(string)
			return slices.Contains(drop, name)
		})
		if len(kept) != len(list) {
			caps[s], changed = kept, true
		}
	}
	return changed
}

// Files returns the JSON files a runc command line hands over with capabilities in them:
// the bundle's config.json for create and run, the process file for exec.
func Files(args []string) []string {
	var cmd, bundle, process string
	for i := 0; i < len(args); i++ {
		a := args[i]
		value := func(flag string) (string, bool) {
			if v, ok := strings.CutPrefix(a, flag+"="); ok {
				return v, true
			}
			if a == flag && i+1 < len(args) {
				i++
				return args[i], true
			}
			return "", false
		}
		if v, ok := value("--bundle"); ok {
			bundle = v
		} else if v, ok := value("-b"); ok {
			bundle = v
		} else if v, ok := value("--process"); ok {
			process = v
		} else if v, ok := value("-p"); ok && cmd == "exec" {
			process = v
		} else if cmd == "" && !strings.HasPrefix(a, "-") {
			cmd = a
		} else if cmd == "" && (a == "--root" || a == "--log" || a == "--log-format" || a == "--criu" || a == "--rootless") {
			i++ // runc's global flags that take a value
		}
	}
	switch cmd {
	case "create", "run":
		if bundle == "" {
			bundle = "."
		}
		return []string{filepath.Join(bundle, "config.json")}
	case "exec":
		if process != "" {
			return []string{process}
		}
	}
	return nil
}

// Rewrite applies fix to each file in place.
func Rewrite(files []string, fix Fix) error {
	for _, f := range files {
		doc, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		out, changed, err := Strip(doc, fix)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if changed {
			if err := os.WriteFile(f, out, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}
