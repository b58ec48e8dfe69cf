// Package framework starts real API servers for tests: single envtest control planes (from
// internal/testenv) and the multi-cluster local fleet through internal/localfleet.
package framework

import (
	"testing"

	"github.com/inferfleet/inferfleet/internal/testenv"
)

// Env is one running envtest control plane.
type Env = testenv.Env

// The single-API-server helpers, from internal/testenv.
var (
	Root           = testenv.Root
	BinDir         = testenv.BinDir
	CRDs           = testenv.CRDs
	Scheme         = testenv.Scheme
	Start          = testenv.Start
	Kubeconfig     = testenv.Kubeconfig
	RegisterMember = testenv.RegisterMember
	ManagerStopped = testenv.ManagerStopped
)

// StartEnv is Start under the name the fleet package's tests use.
func StartEnv(t testing.TB, crdDirs []string) *Env { return testenv.Start(t, crdDirs) }
