//go:build tools

// Package helm pins the helm command built into bin/, which the chart's tests run.
package helm

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
