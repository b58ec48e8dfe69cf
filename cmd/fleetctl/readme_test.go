package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/inferfleet/inferfleet/e2e/framework"
)

// TestREADMECommands: every fleetctl command line the README shows names a command that
// exists, with flags that command takes (alternatives like cordon|uncordon each).
func TestREADMECommands(t *testing.T) {
	// The README and the operator docs.
	var raw []byte
	docs, _ := filepath.Glob(filepath.Join(framework.Root(), "docs", "*.md"))
	for _, f := range append([]string{filepath.Join(framework.Root(), "README.md")}, docs...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(append(raw, b...), '\n')
	}
	line := regexp.MustCompile(`(?m)^\s*bin/fleetctl (.*)$`)
	flag := regexp.MustCompile(`(?:^|[\s\[|])(--?[a-zA-Z][a-zA-Z-]*)`)
	n := 0
	for _, m := range line.FindAllStringSubmatch(string(raw), -1) {
		cmdline := m[1]
		if i := strings.Index(cmdline, " #"); i >= 0 {
			cmdline = cmdline[:i]
		}
		if i := strings.Index(cmdline, " |"); i >= 0 {
			cmdline = cmdline[:i] // piped into another command
		}
		// The command path: the leading words; a|b means each.
		var path []string
		rest := cmdline
		for _, w := range strings.Fields(cmdline) {
			if !regexp.MustCompile(`^[a-z|]+$`).MatchString(w) {
				break
			}
			path = append(path, w)
			rest = strings.TrimSpace(strings.TrimPrefix(rest, w))
		}
		for _, p := range expand(path) {
			n++
			cmd, _, err := newRootCmd().Find(p)
			if err != nil || cmd.CommandPath() != "fleetctl "+strings.Join(p, " ") {
				t.Errorf("README: fleetctl %s: no such command (%v)", strings.Join(p, " "), err)
				continue
			}
			for _, f := range flag.FindAllStringSubmatch(rest, -1) {
				if !hasFlag(cmd, f[1]) {
					t.Errorf("README: fleetctl %s has no flag %s (in %q)", strings.Join(p, " "), f[1], m[0])
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("found %d fleetctl command lines in the README; the pattern no longer matches them", n)
	}
}

// expand turns a path whose words hold alternatives (cordon|uncordon) into every path.
func expand(path []string) [][]string {
	out := [][]string{nil}
	for _, w := range path {
		var next [][]string
		for _, alt := range strings.Split(w, "|") {
			for _, p := range out {
				next = append(next, append(append([]string(nil), p...), alt))
			}
		}
		out = next
	}
	return out
}

func hasFlag(cmd *cobra.Command, f string) bool {
	if strings.HasPrefix(f, "--") {
		return cmd.Flags().Lookup(f[2:]) != nil || cmd.InheritedFlags().Lookup(f[2:]) != nil
	}
	return cmd.Flags().ShorthandLookup(f[1:]) != nil || cmd.InheritedFlags().ShorthandLookup(f[1:]) != nil
}
