// Package docs_test checks the operator docs against the code.
package docs_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/inferfleet/inferfleet/internal/testenv"
)

// reasonName matches the constants that hold a reason the hub writes into a condition, a
// status entry, a placement or autoscaling decision, or an event.
var reasonName = regexp.MustCompile(`^(Reason|ScaleReason|DrillReason|Placement)[A-Z]\w*$|^gatewayStatusWaitedReason$`)

// reasons are the values of those constants in the packages that emit them.
func reasons(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, dir := range []string{"api/v1alpha1", "controllers", "fleet"} {
		pkgs, err := parser.ParseDir(token.NewFileSet(), filepath.Join(root, dir), func(fi os.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, pkg := range pkgs {
			for _, f := range pkg.Files {
				for _, decl := range f.Decls {
					gd, ok := decl.(*ast.GenDecl)
					if !ok || gd.Tok != token.CONST {
						continue
					}
					for _, spec := range gd.Specs {
						vs := spec.(*ast.ValueSpec)
						for i, name := range vs.Names {
							if !reasonName.MatchString(name.Name) || i >= len(vs.Values) {
								continue
							}
							lit, ok := vs.Values[i].(*ast.BasicLit)
							if !ok || lit.Kind != token.STRING {
								continue
							}
							v, _ := strconv.Unquote(lit.Value)
							out[v] = dir + "." + name.Name
						}
					}
				}
			}
		}
	}
	return out
}

// TestEveryReasonIsExplained: each reason the code emits has a heading in
// docs/troubleshooting.md.
func TestEveryReasonIsExplained(t *testing.T) {
	root := testenv.Root()
	doc, err := os.ReadFile(filepath.Join(root, "docs", "troubleshooting.md"))
	if err != nil {
		t.Fatal(err)
	}
	headed := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^### (.*)$").FindAllStringSubmatch(string(doc), -1) {
		for _, r := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(m[1], -1) {
			headed[r[1]] = true
		}
	}
	all := reasons(t, root)
	if len(all) < 40 {
		t.Fatalf("found %d reasons in the code; the constant pattern no longer finds them", len(all))
	}
	for v, name := range all {
		if !headed[v] {
			t.Errorf("%s (%q) has no entry in docs/troubleshooting.md", name, v)
		}
	}
}

// TestRelativeLinksResolve: every relative link in the README and docs/ names a file that
// exists, and a #fragment a heading of it.
func TestRelativeLinksResolve(t *testing.T) {
	root := testenv.Root()
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append(files, filepath.Join(root, "README.md"))
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	code := regexp.MustCompile("`[^`\n]*`") // code spans hold no links (patterns such as `[a-z]([-a-z]*)`)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(code.ReplaceAllString(string(raw), ""), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, frag, _ := strings.Cut(target, "#")
			dest := f
			if path != "" {
				dest = filepath.Join(filepath.Dir(f), path)
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s: link %s: %v", rel(root, f), target, err)
					continue
				}
			}
			if frag != "" && strings.HasSuffix(dest, ".md") && !anchors(t, dest)[frag] {
				t.Errorf("%s: link %s: no heading %q in %s", rel(root, f), target, frag, rel(root, dest))
			}
		}
	}
}

// anchors are the GitHub anchors of a markdown file's headings.
func anchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	for _, m := range regexp.MustCompile(`(?m)^#+ (.*)$`).FindAllStringSubmatch(string(raw), -1) {
		a := strings.ToLower(drop.ReplaceAllString(m[1], ""))
		out[strings.ReplaceAll(a, " ", "-")] = true
	}
	return out
}

func rel(root, f string) string {
	r, _ := filepath.Rel(root, f)
	return r
}

// TestAPIReferenceIsCurrent regenerates docs/api-reference.md from the API types, as
// `make api-docs` does, and fails when the committed page differs.
func TestAPIReferenceIsCurrent(t *testing.T) {
	root := testenv.Root()
	out := filepath.Join(t.TempDir(), "api-reference.md")
	cmd := exec.Command("go", "run", "github.com/elastic/crd-ref-docs@v0.2.0", "--source-path=./api", "--config=hack/api-docs/config.yaml",
		"--renderer=markdown", "--output-path="+out, "--log-level=error")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("crd-ref-docs: %v\n%s", err, b)
	}
	want, _ := os.ReadFile(out)
	got, err := os.ReadFile(filepath.Join(root, "docs", "api-reference.md"))
	if err != nil || string(got) != string(want) {
		t.Errorf("docs/api-reference.md is not what the API types generate (%v): run `make api-docs`", err)
	}
	mk, _ := os.ReadFile(filepath.Join(root, "Makefile"))
	if !strings.Contains(string(mk), "CRD_REF_DOCS ?= go run github.com/elastic/crd-ref-docs@v0.2.0") {
		t.Error("the Makefile's api-docs generator is not the one this test runs")
	}
}

// TestMakeTargetsExist: every `make TARGET` line in the README and docs names a target of
// the Makefile.
func TestMakeTargetsExist(t *testing.T) {
	root := testenv.Root()
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append(files, filepath.Join(root, "README.md"))
	use := regexp.MustCompile(`(?m)^\s*make ([a-z][a-z-]*)`)
	n := 0
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		for _, m := range use.FindAllStringSubmatch(string(raw), -1) {
			n++
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(m[1]) + `:`).Match(mk) {
				t.Errorf("%s: make %s: no such target in the Makefile", rel(root, f), m[1])
			}
		}
	}
	if n == 0 {
		t.Error("no make command found in the docs")
	}
}
