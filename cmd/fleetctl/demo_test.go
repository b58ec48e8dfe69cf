package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/inferfleet/inferfleet/e2e/framework"
)

// TestDemoMatchesREADME runs `fleetctl demo` as `make demo` does (the local fleet, the hub
// binary as a process, the two-region sample) until the sample is Ready, and checks that
// the status it ends on is the block the README shows, but for the times.
func TestDemoMatchesREADME(t *testing.T) {
	// The hub binary `make build` made (make test builds it first).
	if _, err := hubBinary(); err != nil {
		t.Fatal(err)
	}
	var out, log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	o := demoOptions{dir: filepath.Join(t.TempDir(), "fleet"), sample: "config/samples/fleet_v1alpha1_two-region-h100.yaml", wait: 2 * time.Minute}
	cmd := newDemoCmd()
	cmd.SetOut(&out)
	if err := runDemo(ctx, &out, &log, o, cmd); err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, out.String(), log.String())
	}
	blocks := regexp.MustCompile(`(?m)^\[\d\d:\d\d:\d\d\]\n`).Split(out.String(), -1)
	last := blocks[len(blocks)-1]

	readme, err := os.ReadFile(filepath.Join(framework.Root(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)[strings.Index(string(readme), "## What `make demo` shows"):]
	start := strings.Index(section, "```\n") + len("```\n")
	shown := section[start : start+strings.Index(section[start:], "```")]

	ago, spaces := regexp.MustCompile(`[0-9.hmsµ]+ ago`), regexp.MustCompile(`[ \t]+`)
	norm := func(s string) string {
		s = spaces.ReplaceAllString(ago.ReplaceAllString(s, "ago"), " ")
		return strings.TrimSpace(strings.ReplaceAll(s, " \n", "\n"))
	}
	if norm(last) != norm(shown) {
		t.Errorf("the README's demo output:\n%s\nis not what fleetctl demo ends on:\n%s", shown, last)
	}
}
