package controllers_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// TestKVCacheUtilization runs the hub on two members, one with model server pods whose
// /metrics an HTTP server at the pods' IP answers, and reads the gauge the hub exports.
func TestKVCacheUtilization(t *testing.T) {
	const interval = 2 * time.Second
	f := startFleetWith(t, app.HubOptions{KVCacheInterval: interval}, "west", "east")
	ctx := context.Background()
	hub, west := f.hub.Client, f.members["west"].Client

	// The API server proxies to a pod's IP, but not to loopback: serve on a test host.
	host := testenv.TestHost(t)
	ip := host.IP
	l := host.Listen(t)
	// The two servers answer 0.2 and 0.6 in turn: their mean is 0.4 whichever comes first.
	var served atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := []float64{0.2, 0.6}[(served.Add(1)-1)%2]
		fmt.Fprintf(w, "# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} %v\n", v)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	svc := twoRegionService("west", "east")
	svc.Name, svc.Namespace = "llama-kv", "kv"
	svc.Spec.Model.Server.HuggingFaceTokenSecretRef = nil
	svc.Spec.Model.Server.Port = int32(l.Addr().(*net.TCPAddr).Port)
	for _, c := range []client.Client{hub, west} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kv"}}); err != nil {
			t.Fatal(err)
		}
	}
	// West runs two model servers (and one not running yet); east runs none.
	for _, name := range []string{"llama-kv-a", "llama-kv-b", "llama-kv-pending"} {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kv", Labels: map[string]string{"app": "llama-kv"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "vllm", Image: "vllm/vllm-openai"}}},
		}
		if err := west.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
		if name == "llama-kv-pending" {
			p.Status = corev1.PodStatus{Phase: corev1.PodPending}
		}
		if err := west.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}

	series := func(cluster string) map[string]string {
		return map[string]string{"namespace": "kv", "service": "llama-kv", "cluster": cluster}
	}
	// The first read follows the service's first status; the reader reads every interval.
	wait := interval + 20*time.Second
	eventually(t, wait, "west's KV-cache use exported", func() error {
		v, ok := gauge(t, "inferfleet_cluster_kv_cache_utilization", series("west"))
		if !ok || math.Abs(v-0.4) > 1e-9 {
			return fmt.Errorf("west: %v (exported %v), want 0.4", v, ok)
		}
		return nil
	})
	if v, ok := gauge(t, "inferfleet_cluster_kv_cache_utilization", series("east")); ok {
		t.Errorf("east runs no model server, yet exports %v", v)
	}

	// Once no server answers, the series goes rather than stays at its last value.
	for _, name := range []string{"llama-kv-a", "llama-kv-b"} {
		if err := west.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kv"}}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, wait, "west's series removed", func() error {
		if v, ok := gauge(t, "inferfleet_cluster_kv_cache_utilization", series("west")); ok {
			return fmt.Errorf("west still exports %v", v)
		}
		return nil
	})
}

// gauge reads one series of a gauge through the collectors the hub registers.
func gauge(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	m := hubSeries(t, name, labels)
	return m.GetGauge().GetValue(), m != nil
}

// hubSeries returns the series of a metric with exactly these labels, through the
// collectors the hub registers, or nil.
func hubSeries(t *testing.T, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(controllers.Collectors()...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if maps.Equal(got, labels) {
				return m
			}
		}
	}
	return nil
}
