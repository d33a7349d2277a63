package decision

import (
	"cmp"
	"slices"

	"github.com/open-policy-agent/opa/v1/cover"
)

// Coverage says which lines of a policy set's modules its tests evaluated.
// The figures are OPA's, so they match `opa test --coverage` over the same
// files: a line counts when a rule head or an expression on it was
// evaluated; lines with neither (comments, package, import) do not count.
// Test modules are included, as OPA includes them.
type Coverage struct {
	Files           []FileCoverage `json:"files"` // sorted by file
	CoveredLines    int            `json:"covered_lines"`
	NotCoveredLines int            `json:"not_covered_lines"`
	// Percent is CoveredLines out of both, 0 to 100.
	Percent float64 `json:"percent"`
}

// FileCoverage is the coverage of one module.
type FileCoverage struct {
	File            string      `json:"file"`
	CoveredLines    int         `json:"covered_lines"`
	NotCoveredLines int         `json:"not_covered_lines"`
	Percent         float64     `json:"percent"`
	Covered         []LineRange `json:"covered,omitempty"`
	NotCovered      []LineRange `json:"not_covered,omitempty"`
}

// LineRange is the lines Start to End, both included, 1-based.
type LineRange struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// newCoverage converts OPA's coverage report.
func newCoverage(r cover.Report) *Coverage {
	c := &Coverage{
		Files:           make([]FileCoverage, 0, len(r.Files)),
		CoveredLines:    r.CoveredLines,
		NotCoveredLines: r.NotCoveredLines,
		Percent:         r.Coverage,
	}
	for name, fr := range r.Files {
		c.Files = append(c.Files, FileCoverage{
			File:            name,
			CoveredLines:    fr.CoveredLines,
			NotCoveredLines: fr.NotCoveredLines,
			Percent:         fr.Coverage,
			Covered:         lineRanges(fr.Covered),
			NotCovered:      lineRanges(fr.NotCovered),
		})
	}
	slices.SortFunc(c.Files, func(a, b FileCoverage) int { return cmp.Compare(a.File, b.File) })
	return c
}

// lineRanges merges OPA's ranges, one per rule head or expression (several
// on a line, some spanning lines), into sorted, disjoint line ranges, joining
// ranges that touch.
func lineRanges(rs []cover.Range) []LineRange {
	spans := make([]LineRange, 0, len(rs))
	for _, r := range rs {
		spans = append(spans, LineRange{Start: r.Start.Row, End: max(r.End.Row, r.Start.Row)})
	}
	slices.SortFunc(spans, func(a, b LineRange) int { return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.End, b.End)) })
	var merged []LineRange
	for _, s := range spans {
		if n := len(merged); n > 0 && s.Start <= merged[n-1].End+1 {
			merged[n-1].End = max(merged[n-1].End, s.End)
			continue
		}
		merged = append(merged, s)
	}
	return merged
}
