//go:build tools

// Package tools pins the Prometheus module whose promtool hack/build-bins.sh builds into
// bin/, for the alert rules' unit tests (promtool test rules).
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
