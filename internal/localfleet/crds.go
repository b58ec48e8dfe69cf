package localfleet

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/yaml"
)

// loadCRDs reads every *.yaml / *.yml under dirs (recursively) and returns the
// CustomResourceDefinitions among their documents; anything else (samples, test data) is skipped.
func loadCRDs(dirs []string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var crds []*apiextensionsv1.CustomResourceDefinition
	seen := map[string]string{}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
			for {
				doc, err := r.Read()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return fmt.Errorf("read %s: %w", path, err)
				}
				var tm metav1.TypeMeta
				if err := yaml.Unmarshal(doc, &tm); err != nil {
					continue // not a Kubernetes object
				}
				if tm.Kind != "CustomResourceDefinition" || tm.APIVersion != apiextensionsv1.SchemeGroupVersion.String() {
					continue
				}
				crd := &apiextensionsv1.CustomResourceDefinition{}
				if err := yaml.Unmarshal(doc, crd); err != nil {
					return fmt.Errorf("parse CRD in %s: %w", path, err)
				}
				if prev, ok := seen[crd.Name]; ok {
					return fmt.Errorf("CRD %s is defined twice: %s and %s", crd.Name, prev, path)
				}
				seen[crd.Name] = path
				crds = append(crds, crd)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("load CRDs from %s: %w", dir, err)
		}
	}
	return crds, nil
}

// nudgeAnnotation is touched on CRDs stuck before Established; see installCRDs.
const nudgeAnnotation = "local.inferfleet.dev/establish-nudge"

// installCRDs creates or updates crds and waits until every one is Established.
func installCRDs(ctx context.Context, cfg *rest.Config, crds []*apiextensionsv1.CustomResourceDefinition) error {
	if len(crds) == 0 {
		return nil
	}
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	api := cs.ApiextensionsV1().CustomResourceDefinitions()
	// A few at a time: each CRD costs the apiserver an OpenAPI rebuild, and cores are scarce.
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	errs := make([]error, len(crds))
	for i, crd := range crds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				_, err := api.Create(ctx, crd.DeepCopy(), metav1.CreateOptions{})
				if !apierrors.IsAlreadyExists(err) {
					return err
				}
				cur, err := api.Get(ctx, crd.Name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				upd := crd.DeepCopy()
				upd.ResourceVersion = cur.ResourceVersion
				_, err = api.Update(ctx, upd, metav1.UpdateOptions{})
				return err
			})
			if errs[i] != nil {
				errs[i] = fmt.Errorf("install CRD %s: %w", crd.Name, errs[i])
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	lastNudge := time.Now()
	for {
		list, err := api.List(ctx, metav1.ListOptions{})
		if err == nil {
			pending := pendingCRDs(crds, list.Items)
			if len(pending) == 0 {
				return nil
			}
			err = fmt.Errorf("not yet established: %s", strings.Join(pending, ", "))
			// The apiserver queues a CRD for establishing only on a create or update event, so
			// one left "Installing" by a killed apiserver stays so after a restart. Touching an
			// annotation produces the event without changing the served API.
			if time.Since(lastNudge) > 2*time.Second {
				lastNudge = time.Now()
				for _, name := range pending {
					patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, nudgeAnnotation, time.Now().UTC().Format(time.RFC3339Nano))
					_, _ = api.Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for CRDs: %w (%v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func pendingCRDs(want []*apiextensionsv1.CustomResourceDefinition, have []apiextensionsv1.CustomResourceDefinition) []string {
	established := map[string]bool{}
	for _, c := range have {
		for _, cond := range c.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				established[c.Name] = true
			}
		}
	}
	var pending []string
	for _, c := range want {
		if !established[c.Name] {
			pending = append(pending, c.Name)
		}
	}
	slices.Sort(pending)
	return pending
}
