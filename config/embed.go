// Package config holds the manifests that install inferfleet. The member ClusterRole is
// embedded for `fleetctl cluster join`, which binds the hub's identity in a member to
// exactly this role.
package config

import _ "embed"

// MemberRole is rbac/member-role.yaml: what the hub's identity needs in every member.
//
//go:embed rbac/member-role.yaml
var MemberRole []byte
