package fleet

// EvenSplit spreads total replicas evenly over clusters in the given order: each gets
// total/n, and the first total%n get one more. Deterministic for the same inputs.
func EvenSplit(total int32, clusters []Cluster) map[string]int32 {
	out := make(map[string]int32, len(clusters))
	n := int32(len(clusters))
	if n == 0 {
		return out
	}
	for i, c := range clusters {
		out[c.Name] = total / n
		if int32(i) < total%n {
			out[c.Name]++
		}
	}
	return out
}
