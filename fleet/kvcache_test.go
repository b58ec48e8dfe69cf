package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// modelServer serves bodies in turn on /metrics on the test host, as vLLM servers do,
// until the test ends: pods sharing it answer with different values.
func modelServer(t *testing.T, host *testenv.Host, bodies ...string) int32 {
	t.Helper()
	l := host.Listen(t)
	var served atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, bodies[int(served.Add(1)-1)%len(bodies)])
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return int32(l.Addr().(*net.TCPAddr).Port)
}

const vllmMetrics = `# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} %v
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
`

// TestReadKVCache reads model servers' KV-cache use through a real API server's pod proxy,
// from HTTP servers standing in for vLLM at the pods' IP, a test host's.
func TestReadKVCache(t *testing.T) {
	env := testenv.Start(t, nil)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(env.Config)
	host := testenv.TestHost(t)
	ip := host.IP
	// Each pod is its own port on the test host: the proxy goes to podIP:port.
	pod := func(t *testing.T, ns, name string, phase corev1.PodPhase, labels map[string]string) {
		t.Helper()
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "vllm", Image: "vllm/vllm-openai"}}},
		}
		p, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status = corev1.PodStatus{Phase: phase, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
		if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	namespace := func(t *testing.T, name string) string {
		t.Helper()
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		return name
	}
	llama := labels.SelectorFromSet(labels.Set{"app": "llama"})

	// The servers of one cluster share a port, as a Deployment's pods do; here they share
	// the test host's address too, so each case has its own server and namespace.
	for i, tc := range []struct {
		name    string
		bodies  []string
		pods    map[string]corev1.PodPhase
		want    float64
		servers int
		err     string
	}{
		{name: "one server", bodies: []string{fmt.Sprintf(vllmMetrics, 0.42)}, pods: map[string]corev1.PodPhase{"a": corev1.PodRunning}, want: 0.42, servers: 1},
		{name: "mean over running servers", bodies: []string{fmt.Sprintf(vllmMetrics, 0.2), fmt.Sprintf(vllmMetrics, 0.6)}, want: 0.4, servers: 2,
			pods: map[string]corev1.PodPhase{"a": corev1.PodRunning, "b": corev1.PodRunning, "pending": corev1.PodPending}},
		{name: "vLLM before 0.10", bodies: []string{"vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.5\nvllm:gpu_cache_usage_perc{model_name=\"m {lora}\"} 0.7\n"},
			pods: map[string]corev1.PodPhase{"a": corev1.PodRunning}, want: 0.6, servers: 1},
		{name: "server without the metric", bodies: []string{"vllm:num_requests_running 1\n"}, pods: map[string]corev1.PodPhase{"a": corev1.PodRunning},
			err: "a: no vllm:kv_cache_usage_perc in /metrics"},
		{name: "no running server", bodies: []string{fmt.Sprintf(vllmMetrics, 0.1)}, pods: map[string]corev1.PodPhase{"a": corev1.PodPending},
			err: "no running pod matches app=llama"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t, fmt.Sprintf("kv-%d", i))
			port := modelServer(t, host, tc.bodies...)
			for name, phase := range tc.pods {
				pod(t, ns, name, phase, map[string]string{"app": "llama"})
			}
			// Another service's pod in the namespace is not read.
			pod(t, ns, "other", corev1.PodRunning, map[string]string{"app": "other"})

			got, err := fleet.ReadKVCache(ctx, cs.CoreV1().Pods(ns), llama, port)
			if tc.err != "" {
				if !errors.Is(err, fleet.ErrNoKVCache) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want ErrNoKVCache saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got.Utilization-tc.want) > 1e-9 || got.Servers != tc.servers {
				t.Errorf("read %+v, want utilization %v from %d servers", got, tc.want, tc.servers)
			}
		})
	}

	// A server that is down is reported with the API server's reason.
	ns := namespace(t, "kv-down")
	pod(t, ns, "a", corev1.PodRunning, map[string]string{"app": "llama"})
	l := host.Listen(t)
	closed := int32(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	if _, err := fleet.ReadKVCache(ctx, cs.CoreV1().Pods(ns), llama, closed); !errors.Is(err, fleet.ErrNoKVCache) || !strings.Contains(err.Error(), "a: ") {
		t.Errorf("server down: err = %v", err)
	}
}

// TestUnanswered: servers that answer without the KV-cache gauge answered; only a cluster
// none of whose running servers answered is unanswered.
func TestUnanswered(t *testing.T) {
	answered := fleet.ServerReading{Pod: "a", Ready: true, Values: map[string]float64{fleet.VLLMWaitingMetric: 3}}
	failed := fleet.ServerReading{Pod: "b", Ready: true, Err: errors.New("connection refused")}
	if err := (fleet.Servers{Read: []fleet.ServerReading{failed, answered}}).Unanswered(); err != nil {
		t.Errorf("one server answered (without KV-cache use): %v", err)
	}
	if err := (fleet.Servers{Pending: 2}).Unanswered(); err != nil {
		t.Errorf("none running yet: %v", err)
	}
	err := (fleet.Servers{Read: []fleet.ServerReading{failed}}).Unanswered()
	if !errors.Is(err, fleet.ErrNoServerAnswered) || !strings.Contains(err.Error(), "b: connection refused") {
		t.Errorf("no server answered: %v", err)
	}
}
