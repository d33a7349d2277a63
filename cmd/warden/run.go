package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3"; a
// plain build reports the module version from the build info.
var version = ""

const usage = `Warden — a policy decision point for APIs that authenticate with JWTs.

Usage:
  warden serve [flags]       run the decision server (no flags: development mode)
  warden token [flags]       mint a development token (development issuer only)
  warden event <type> [flags] publish a permission-change event through a running Warden
  warden policy <command>    test, check, format or push Rego policies (test, check, fmt, push)
  warden health [flags]      exit 0 when the Warden of this configuration is ready (/readyz), for
                             a container's health check
  warden version             print the version

Run "warden <command> --help" for a command's flags.
`

// run is the whole program. It owns flags and configuration, and returns
// when the command is done or ctx is cancelled (SIGINT/SIGTERM).
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	prog := progName(args[0])
	cmd, rest := args[1], args[2:]
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, prog, rest, getenv, stdout, stderr)
	case "token":
		err = mintToken(prog, rest, getenv, stdout, stderr)
	case "event":
		err = publishEvent(ctx, rest, getenv, stdout, stderr)
	case "policy":
		err = policyCommand(ctx, rest, getenv, stdout, stderr)
	case "health":
		err = health(ctx, rest, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "warden", versionString())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// progName is how the banner and messages tell a user to run Warden again:
// "go run ./cmd/warden" when started that way, else the binary's path.
func progName(arg0 string) string {
	if strings.Contains(filepath.ToSlash(arg0), "/go-build") {
		return "go run ./cmd/warden"
	}
	return arg0
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
