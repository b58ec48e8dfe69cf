package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The bounds of model.server.startupTimeout and overrides.startupTimeout, as the CRD's CEL
// rules state them.
const (
	minStartupTimeout = 10 * time.Second
	maxStartupTimeout = 6 * time.Hour
)

// validateServer checks the model server's command and startup timeout, in spec.model and
// in every cluster's overrides.
func validateServer(spec *FleetInferenceServiceSpec, p *field.Path) field.ErrorList {
	srv := p.Child("model", "server")
	errs := validateCommand(spec.Model.Server.Command, srv.Child("command"))
	errs = append(errs, validateStartupTimeout(spec.Model.Server.StartupTimeout, srv.Child("startupTimeout"))...)
	if ref := spec.Model.Server.HuggingFaceTokenSecretRef; ref != nil && ref.Name == "" {
		errs = append(errs, field.Required(srv.Child("huggingFaceTokenSecretRef", "name"), "the Secret holding the token"))
	}
	if port := spec.Model.Server.Port; port < 0 || port > 65535 {
		errs = append(errs, field.Invalid(srv.Child("port"), port, "must be 1..65535"))
	}
	for i, c := range spec.Placement.Clusters {
		if c.Overrides == nil {
			continue
		}
		op := p.Child("placement", "clusters").Index(i).Child("overrides")
		errs = append(errs, validateCommand(c.Overrides.Command, op.Child("command"))...)
		errs = append(errs, validateStartupTimeout(c.Overrides.StartupTimeout, op.Child("startupTimeout"))...)
	}
	return errs
}

func validateCommand(command []string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, w := range command {
		if w == "" {
			errs = append(errs, field.Invalid(p.Index(i), w, "must not be empty"))
		}
	}
	return errs
}

func validateStartupTimeout(d *metav1.Duration, p *field.Path) field.ErrorList {
	if d == nil || (d.Duration >= minStartupTimeout && d.Duration <= maxStartupTimeout) {
		return nil
	}
	return field.ErrorList{field.Invalid(p, d.Duration.String(), "must be between 10s and 6h")}
}
