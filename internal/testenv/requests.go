package testenv

import (
	"fmt"

	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// RequestCounts is rest_client_requests_total, which controller-runtime registers for
// every client-go client in the process, summed by host and method: what this process (a
// hub in it, and the test) asked of each API server.
type RequestCounts map[string]map[string]float64

// WriteMethods are the HTTP methods that change something on an API server.
var WriteMethods = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "DELETE": true}

// ReadRequestCounts snapshots rest_client_requests_total.
func ReadRequestCounts() (RequestCounts, error) {
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return nil, err
	}
	out := RequestCounts{}
	found := false
	for _, f := range families {
		if f.GetName() != "rest_client_requests_total" {
			continue
		}
		found = true
		for _, m := range f.GetMetric() {
			var host, method string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "host":
					host = l.GetValue()
				case "method":
					method = l.GetValue()
				}
			}
			if out[host] == nil {
				out[host] = map[string]float64{}
			}
			out[host][method] += m.GetCounter().GetValue()
		}
	}
	if !found {
		return nil, fmt.Errorf("rest_client_requests_total is not in controller-runtime's metrics registry")
	}
	return out, nil
}

// WritesSince counts, per host, the write requests made since before.
func (after RequestCounts) WritesSince(before RequestCounts) map[string]int {
	out := map[string]int{}
	for host, byMethod := range after {
		for method, n := range byMethod {
			if d := int(n - before[host][method]); d > 0 && WriteMethods[method] {
				out[host] += d
			}
		}
	}
	return out
}

// SyncedPairs is the sample count of inferfleet_propagation_seconds in this process: a hub
// running in it observes that metric once per (service, generation, member) the first
// time it has that generation in sync in that member, so a restarted hub counts every
// pair again as it confirms them.
func SyncedPairs() (int, error) {
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range families {
		if f.GetName() != "inferfleet_propagation_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			n += int(m.GetHistogram().GetSampleCount())
		}
	}
	return n, nil
}
