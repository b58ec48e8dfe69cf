package config_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

type alertRule struct {
	Alert string `json:"alert"`
	Expr  string `json:"expr"`
}

// alertRules reads the rule groups of config/prometheus/prometheusrule.yaml.
func alertRules(t *testing.T) (groups []any, rules []alertRule) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "prometheus", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Spec struct {
			Groups []struct {
				Rules []alertRule `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	var generic struct {
		Spec struct {
			Groups []any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &pr); err != nil {
		t.Fatal(err)
	}
	for _, g := range pr.Spec.Groups {
		rules = append(rules, g.Rules...)
	}
	return generic.Spec.Groups, rules
}

// TestAlertRules checks the PrometheusRule's rules with promtool and runs its unit tests
// (config/prometheus/alerts_test.yaml) on synthetic series. Every alert must have a test
// where it fires and an earlier evaluation of the same series where it does not yet.
func TestAlertRules(t *testing.T) {
	groups, rules := alertRules(t)
	dir := t.TempDir()
	out, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "prometheus", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool := filepath.Join(testenv.BinDir(), "promtool")
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}

	// Each alert fires in some test, and some earlier evaluation of that test has it silent.
	var suite struct {
		Tests []struct {
			Name  string `json:"name"`
			Evals []struct {
				EvalTime  string `json:"eval_time"`
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(tests, &suite); err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		covered := false
		for _, tc := range suite.Tests {
			firstFire, silentBefore := time.Duration(-1), false
			for _, e := range tc.Evals {
				if e.Alertname == r.Alert && len(e.ExpAlerts) > 0 {
					at, _ := time.ParseDuration(e.EvalTime)
					if firstFire < 0 || at < firstFire {
						firstFire = at
					}
				}
			}
			for _, e := range tc.Evals {
				at, _ := time.ParseDuration(e.EvalTime)
				if e.Alertname == r.Alert && len(e.ExpAlerts) == 0 && firstFire >= 0 && at < firstFire {
					silentBefore = true
				}
			}
			covered = covered || (firstFire >= 0 && silentBefore)
		}
		if !covered {
			t.Errorf("alert %s has no test where it fires after an evaluation where it does not", r.Alert)
		}
	}
}

// TestAlertRulesUseHubMetrics checks that every metric an alert reads is one the hub
// exports, and that every alert has a troubleshooting entry.
func TestAlertRulesUseHubMetrics(t *testing.T) {
	_, rules := alertRules(t)
	exported := map[string]bool{}
	descs := make(chan *prometheus.Desc, 100)
	go func() {
		for _, c := range append(controllers.Collectors(), fleet.Collectors()...) {
			c.Describe(descs)
		}
		close(descs)
	}()
	fq := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range descs {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			exported[m[1]] = true
		}
	}
	docs, err := os.ReadFile(filepath.Join(testenv.Root(), "docs", "troubleshooting.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) < 5 {
		t.Fatalf("want the five alerts of the hub, found %d", len(rules))
	}
	metric := regexp.MustCompile(`inferfleet_[a-z_]+`)
	for _, r := range rules {
		for _, m := range metric.FindAllString(r.Expr, -1) {
			base := m
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(m, suffix); ok && exported[b] {
					base = b
				}
			}
			if !exported[base] {
				t.Errorf("alert %s reads %s, which the hub does not export", r.Alert, m)
			}
		}
		if !slices.Contains(strings.Split(string(docs), "\n"), "### `"+r.Alert+"`") {
			t.Errorf("docs/troubleshooting.md has no entry (### `%s`) for the alert", r.Alert)
		}
	}
}

// TestOptionalKustomizations applies `kubectl apply -k config/prometheus` and
// `config/networkpolicy` to a real API server with the Prometheus operator's CRDs, as an
// operator would.
func TestOptionalKustomizations(t *testing.T) {
	root := testenv.Root()
	env := testenv.Start(t, []string{filepath.Join(root, "config", "crd", "external", "prometheus-operator")})
	kubeconfig := testenv.KubeconfigFile(t, env.Config, "envtest")
	kubectl := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(testenv.BinDir(), "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	kubectl("create", "namespace", "inferfleet-system")
	kubectl("apply", "-k", "config/prometheus")
	kubectl("apply", "-k", "config/networkpolicy")
	out := kubectl("get", "servicemonitors,prometheusrules,networkpolicies", "-n", "inferfleet-system", "-o", "name")
	for _, want := range []string{"servicemonitor.monitoring.coreos.com/inferfleet-hub", "prometheusrule.monitoring.coreos.com/inferfleet-hub",
		"networkpolicy.networking.k8s.io/inferfleet-hub"} {
		if !strings.Contains(out, want) {
			t.Errorf("after apply -k, %s is missing:\n%s", want, out)
		}
	}
}
