package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aymanbagabas/go-udiff"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"

	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/policies"
)

const policyUsage = `usage: warden policy <command> [flags] [dir]

Commands:
  test [dir]        run the set's *_test.rego tests (default: the shipped policies)
  check [dir]       compile, lint (OPA strict mode) and test the set, as Warden does
                    before it activates one (default: the shipped policies)
  fmt [path ...]    show the Rego files not formatted as "opa fmt" formats them
                    (default: the current directory); -w rewrites them
  push [dir]        upload the set to a running Warden (checked and tested there
                    before it is stored) and wait until every replica runs it

A policy set is a directory of .rego modules and JSON/YAML data files, laid
out as for "opa test" and policies.dir. Run "warden policy <command> --help"
for a command's flags.
`

// policyCommand implements "warden policy": the tools a policy author and a
// CI pipeline run before a set reaches Warden; only push needs a server.
func policyCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return errors.New("warden policy: no command given")
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "test":
		return policyTest(ctx, rest, stdout, stderr)
	case "check":
		return policyCheck(ctx, rest, stdout, stderr)
	case "fmt":
		return policyFmt(rest, stdout, stderr)
	case "push":
		return policyPush(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, policyUsage)
		return nil
	default:
		fmt.Fprint(stderr, policyUsage)
		return fmt.Errorf("warden policy: unknown command %q", sub)
	}
}

// parseInterspersed parses flags that may come after the positional
// arguments too ("warden policy test ./policies --coverage"), which the flag
// package alone stops at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// newPolicyFlags is the flag set of one policy command; its usage lists the
// command's synopsis, then its flags.
func newPolicyFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("policy "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: warden policy %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// policySet is the set a test or check command works on: the directory
// given, or the shipped policies.
type policySet struct {
	fsys  fs.FS
	dir   string // "" for the shipped set
	label string // how messages name the set
}

// parsePolicyArgs parses a command's flags (which may follow the directory),
// checks --format when the command has one, and opens the set named.
func parsePolicyArgs(fs *flag.FlagSet, args []string, outFormat *string) (policySet, error) {
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return policySet{}, err
	}
	if outFormat != nil {
		if err := checkFormat(*outFormat); err != nil {
			return policySet{}, err
		}
	}
	return openPolicySet(positional)
}

func openPolicySet(positional []string) (policySet, error) {
	switch len(positional) {
	case 0:
		return policySet{fsys: policies.FS(), label: "shipped policies"}, nil
	case 1:
	default:
		return policySet{}, fmt.Errorf("one policy directory at most, got %q", positional)
	}
	dir := positional[0]
	info, err := os.Stat(dir)
	if err != nil {
		return policySet{}, err
	}
	if !info.IsDir() {
		return policySet{}, fmt.Errorf("%s is not a directory; a policy set is a directory of .rego and data files", dir)
	}
	return policySet{fsys: os.DirFS(dir), dir: dir, label: dir}, nil
}

// path is how output names a file of the set: joined to the directory given,
// so that an editor or a CI annotation finds it from where the command ran.
func (s policySet) path(file string) string {
	if s.dir == "" || file == "" {
		return file
	}
	return filepath.Join(s.dir, file)
}

// problem is p with its file named as path says.
func (s policySet) problem(p decision.Problem) decision.Problem {
	p.File = s.path(p.File)
	return p
}

func checkFormat(f string) error {
	if f != "text" && f != "json" {
		return fmt.Errorf("--format %q: want text or json", f)
	}
	return nil
}

// policyTest implements "warden policy test".
func policyTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var opts decision.TestOptions
	var outFormat string
	fs := newPolicyFlags("test", "[flags] [dir]", stderr)
	fs.StringVar(&opts.Run, "run", "", "run only the tests whose full name (data.<package>.<test>) matches this regular expression")
	fs.BoolVar(&opts.Coverage, "coverage", false, "report which lines of each module the tests evaluated")
	fs.BoolVar(&opts.AllowNetworkBuiltins, "allow-network-builtins", false, "allow http.send, net.lookup_ip_addr and opa.runtime, as Warden would with network built-ins allowed")
	fs.DurationVar(&opts.Timeout, "timeout", 5*time.Second, "longest one test may run")
	fs.StringVar(&outFormat, "format", "text", "output format: text, or json for CI pipelines")
	set, err := parsePolicyArgs(fs, args, &outFormat)
	if err != nil {
		return err
	}

	report, err := decision.Test(ctx, set.fsys, opts)
	var pe *decision.PolicyError
	if errors.As(err, &pe) {
		return reportProblems(stdout, set, outFormat, "passed", pe)
	}
	if err != nil {
		return err
	}
	for i := range report.Tests {
		t := &report.Tests[i]
		t.File = set.path(t.File)
		if f := t.Failure; f != nil {
			f.File = set.path(f.File)
		}
		if t.Error != nil {
			*t.Error = set.problem(*t.Error)
		}
	}
	if c := report.Coverage; c != nil {
		for i := range c.Files {
			c.Files[i].File = set.path(c.Files[i].File)
		}
	}

	if outFormat == "json" {
		if err := writeJSON(stdout, struct {
			Passed bool `json:"passed"`
			*decision.TestReport
		}{report.Passed(), report}); err != nil {
			return err
		}
	} else {
		printTestReport(stdout, report)
	}
	c := report.Counts
	switch {
	case !report.Passed():
		return fmt.Errorf("%s: %d of %d tests failed", set.label, c.Fail+c.Error, c.Total())
	case c.Total() == 0 && outFormat == "text" && opts.Run != "":
		fmt.Fprintf(stdout, "no test in %s matches --run %q\n", set.label, opts.Run)
	case c.Total() == 0 && outFormat == "text":
		fmt.Fprintf(stdout, "no tests found in %s\n", set.label)
	}
	return nil
}

// separator is the rule `opa test` draws between results and summary.
var separator = strings.Repeat("-", 80)

// printTestReport prints one line per test, grouped by file, with the detail
// of each failure under it, then a summary, as `opa test -v` does.
func printTestReport(w io.Writer, r *decision.TestReport) {
	file := ""
	for _, t := range r.Tests {
		if t.File != file {
			if file != "" {
				fmt.Fprintln(w)
			}
			file = t.File
			fmt.Fprintf(w, "%s:\n", file)
		}
		switch t.Outcome {
		case decision.OutcomeSkip:
			fmt.Fprintf(w, "%s: SKIPPED\n", t.FullName())
			continue
		case decision.OutcomePass:
			fmt.Fprintf(w, "%s: PASS (%v)\n", t.FullName(), roundDuration(t.Duration))
		case decision.OutcomeFail:
			fmt.Fprintf(w, "%s: FAIL (%v)\n", t.FullName(), roundDuration(t.Duration))
			printFailure(w, t.Failure)
		case decision.OutcomeError:
			fmt.Fprintf(w, "%s: ERROR (%v)\n", t.FullName(), roundDuration(t.Duration))
			printTestError(w, t.Error)
		}
		if t.Output != "" {
			fmt.Fprintln(w, "  output:")
			printIndented(w, "    ", strings.Split(strings.TrimRight(t.Output, "\n"), "\n"))
		}
	}
	if len(r.Tests) > 0 {
		fmt.Fprintln(w, separator)
	}
	c := r.Counts
	for _, n := range []struct {
		label string
		n     int
	}{{"PASS", c.Pass}, {"FAIL", c.Fail}, {"SKIPPED", c.Skip}, {"ERROR", c.Error}} {
		if n.n > 0 {
			fmt.Fprintf(w, "%s: %d/%d\n", n.label, n.n, c.Total())
		}
	}
	if r.Coverage != nil {
		printCoverage(w, r.Coverage)
	}
}

func printFailure(w io.Writer, f *decision.TestFailure) {
	if f == nil {
		return
	}
	if f.Row > 0 {
		fmt.Fprintf(w, "  failed at %s:%d:%d:\n", f.File, f.Row, f.Col)
		printIndented(w, "    ", f.Expr)
	}
	for _, c := range f.Cases {
		fmt.Fprintf(w, "  case %s: FAIL\n", c)
	}
	if len(f.Trace) > 0 {
		fmt.Fprintln(w, "  trace (notes and failures):")
		printIndented(w, "    ", f.Trace)
	}
}

func printIndented(w io.Writer, indent string, lines []string) {
	for _, l := range lines {
		if l == "" {
			fmt.Fprintln(w) // no trailing blanks
			continue
		}
		fmt.Fprintf(w, "%s%s\n", indent, l)
	}
}

// printTestError prints where a test's evaluation failed and, from OPA's
// stack trace, the queries it was in.
func printTestError(w io.Writer, e *decision.Problem) {
	if e == nil {
		return
	}
	head := e.Message
	if e.Code != "" {
		head = e.Code + ": " + head
	}
	if e.Row > 0 {
		head = fmt.Sprintf("%s:%d:%d: %s", e.File, e.Row, e.Col, head)
	}
	printIndented(w, "  ", strings.Split(head, "\n"))
	if len(e.Details) > 0 {
		fmt.Fprintln(w, "  stack:")
		printIndented(w, "    ", e.Details)
	}
}

// printCoverage prints each module's coverage and the lines its tests did
// not reach, then the total.
func printCoverage(w io.Writer, c *decision.Coverage) {
	fmt.Fprintln(w, separator)
	fmt.Fprintln(w, "COVERAGE")
	width := len("total")
	for _, f := range c.Files {
		width = max(width, len(f.File))
	}
	line := func(name string, percent float64, covered, notCovered int) string {
		return fmt.Sprintf("  %-*s %6.1f%%  %d/%d lines", width, name, percent, covered, covered+notCovered)
	}
	for _, f := range c.Files {
		fmt.Fprint(w, line(f.File, f.Percent, f.CoveredLines, f.NotCoveredLines))
		if len(f.NotCovered) > 0 {
			ranges := make([]string, len(f.NotCovered))
			for i, r := range f.NotCovered {
				ranges[i] = fmt.Sprint(r.Start)
				if r.End > r.Start {
					ranges[i] += fmt.Sprintf("-%d", r.End)
				}
			}
			fmt.Fprintf(w, "  not covered: %s", strings.Join(ranges, ", "))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, line("total", c.Percent, c.CoveredLines, c.NotCoveredLines))
}

// roundDuration keeps test durations readable: OPA's nanoseconds are noise.
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// policyCheck implements "warden policy check": the checks Warden makes
// before it activates a set (it compiles whole, defines the entrypoint's
// allow rule, its tests pass), plus OPA's strict mode as a lint.
func policyCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var opts decision.CheckOptions
	var outFormat string
	fs := newPolicyFlags("check", "[flags] [dir]", stderr)
	fs.StringVar(&opts.Entrypoint, "entrypoint", decision.DefaultEntrypoint, "package path of the decision document (policies.entrypoint)")
	fs.BoolVar(&opts.AllowNetworkBuiltins, "allow-network-builtins", false, "allow http.send, net.lookup_ip_addr and opa.runtime, as Warden would with network built-ins allowed")
	fs.StringVar(&outFormat, "format", "text", "output format: text, or json for CI pipelines")
	set, err := parsePolicyArgs(fs, args, &outFormat)
	if err != nil {
		return err
	}
	opts.Strict = true

	cand, err := decision.Check(ctx, set.fsys, opts)
	var pe *decision.PolicyError
	if errors.As(err, &pe) {
		return reportProblems(stdout, set, outFormat, "ok", pe)
	}
	if err != nil {
		return err
	}
	if outFormat == "json" {
		return writeJSON(stdout, map[string]any{
			"ok": true, "revision": cand.Revision, "files": cand.Files, "tests": cand.Tests.Counts,
		})
	}
	fmt.Fprintf(stdout, "%s: ok: revision %s, %d files, %d tests passed\n", set.label, cand.Revision, len(cand.Files), cand.Tests.Counts.Pass)
	return nil
}

// reportProblems prints what is wrong with a set, one problem per line as
// file:row:col: code: message, or as JSON where okKey is false, and returns
// the error that makes the command exit non-zero.
func reportProblems(w io.Writer, set policySet, outFormat, okKey string, pe *decision.PolicyError) error {
	problems := make([]decision.Problem, len(pe.Problems))
	for i, p := range pe.Problems {
		problems[i] = set.problem(p)
	}
	if outFormat == "json" {
		if err := writeJSON(w, map[string]any{okKey: false, "problems": problems}); err != nil {
			return err
		}
	} else {
		for _, p := range problems {
			fmt.Fprintln(w, strings.ReplaceAll(p.String(), "\n\t\t", "\n\t"))
		}
	}
	if len(problems) == 1 {
		return fmt.Errorf("%s: 1 problem", set.label)
	}
	return fmt.Errorf("%s: %d problems", set.label, len(problems))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// policyFmt implements "warden policy fmt". Without -w it only looks, and
// exits non-zero when a file is not formatted, so that CI can run it as is.
func policyFmt(args []string, stdout, stderr io.Writer) error {
	var write, list, fail bool
	fs := newPolicyFlags("fmt", "[-w] [--list] [--fail] [path ...]", stderr)
	fs.BoolVar(&write, "w", false, "rewrite the files that are not formatted, and name them")
	fs.BoolVar(&list, "list", false, "only name the files that are not formatted, instead of showing a diff")
	fs.BoolVar(&list, "l", false, "short for --list")
	fs.BoolVar(&fail, "fail", false, "with -w, exit non-zero when a file was rewritten (e.g. in a pre-commit hook)")
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		paths = []string{"."}
	}
	files, err := regoFiles(paths)
	if err != nil {
		return err
	}

	var unformatted, broken int
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		formatted, err := format.SourceWithOpts(name, src, format.Opts{RegoVersion: ast.RegoV1})
		if err != nil {
			// A file that does not parse cannot be formatted; say where.
			broken++
			printFormatError(stderr, err)
			continue
		}
		if bytes.Equal(src, formatted) {
			continue
		}
		unformatted++
		switch {
		case write:
			info, err := os.Stat(name)
			if err != nil {
				return err
			}
			if err := os.WriteFile(name, formatted, info.Mode().Perm()); err != nil {
				return err
			}
			fmt.Fprintln(stdout, name)
		case list:
			fmt.Fprintln(stdout, name)
		default:
			fmt.Fprint(stdout, udiff.Unified(name, name+" (formatted)", string(src), string(formatted)))
		}
	}
	switch {
	case broken > 0:
		return fmt.Errorf("%d of %d files do not parse", broken, len(files))
	case unformatted > 0 && !write:
		return fmt.Errorf("%d of %d files are not formatted; run warden policy fmt -w", unformatted, len(files))
	case unformatted > 0 && fail:
		return fmt.Errorf("rewrote %d of %d files", unformatted, len(files))
	}
	return nil
}

// regoFiles lists the .rego files under paths: a file is taken as given,
// a directory is walked, leaving out hidden files and directories (.git,
// editors' files) as Warden's loader does.
func regoFiles(paths []string) ([]string, error) {
	var files []string
	for _, root := range paths {
		info, err := os.Stat(root)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, root)
			continue
		}
		err = decision.WalkPolicyFiles(os.DirFS(root), ".", func(name string) error {
			if decision.KindOf(name) != decision.KindData {
				files = append(files, filepath.Join(root, filepath.FromSlash(name)))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// printFormatError prints a parse error as file:row:col: message.
func printFormatError(w io.Writer, err error) {
	var errs ast.Errors
	if !errors.As(err, &errs) {
		fmt.Fprintln(w, err)
		return
	}
	for _, e := range errs {
		if loc := e.Location; loc != nil {
			fmt.Fprintf(w, "%s:%d:%d: %s: %s\n", loc.File, loc.Row, loc.Col, e.Code, e.Message)
		} else {
			fmt.Fprintf(w, "%s: %s\n", e.Code, e.Message)
		}
	}
}
