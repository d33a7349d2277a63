package decision

// BuildInput exposes buildInput to the external tests and benchmarks.
var BuildInput = buildInput
