package render

import (
	"bytes"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// YAML encodes objects as a `---` separated stream, in order.
func YAML(objs []client.Object) ([]byte, error) {
	var buf bytes.Buffer
	for i, o := range objs {
		if i > 0 {
			buf.WriteString("---\n")
		}
		b, err := yaml.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("marshal %T %s: %w", o, o.GetName(), err)
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}
