package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestProcessesSurviveNATSRestart is the deployment as an operator runs it:
// a standalone nats-server with JetStream (built from go.mod's
// nats-server), three separate warden processes connected to it, events
// published through the API while the NATS server is killed and restarted
// on the same store. Every event JetStream acknowledged must be enforced by
// every replica afterwards, including one started after the restart.
func TestProcessesSurviveNATSRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs separate processes")
	}
	bin := buildBinaries(t)
	natsPort := freePort(t)
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	store := t.TempDir()
	startNATS := func() *exec.Cmd {
		return startProcess(t, filepath.Join(bin, "nats-server"), "-js", "-sd", store, "-a", "127.0.0.1", "-p", fmt.Sprint(natsPort))
	}
	nats := startNATS()

	dataDir := t.TempDir() // the shared development issuer
	if _, _, err := loadDevIssuer(dataDir); err != nil {
		t.Fatal(err)
	}
	startReplica := func(id string) string {
		port := freePort(t)
		startProcess(t, filepath.Join(bin, "warden"), "serve", "--data-dir", dataDir, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
			"--events-nats-url", natsURL, "--events-replica-id", id, "--events-grace", "1m")
		url := fmt.Sprintf("http://127.0.0.1:%d", port)
		waitReady(t, url)
		return url
	}
	replicas := []string{startReplica("p1"), startReplica("p2"), startReplica("p3")}

	// Tokens minted before any event, two seconds back so that each is
	// older than its event whatever the second boundaries.
	dev, _, _ := loadDevIssuer(dataDir)
	const n = 40
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i], _ = dev.mint(fmt.Sprintf("user-%d", i), []string{"manager"}, 30*time.Minute, nil, time.Now().Add(-2*time.Second))
	}

	// Publish n events through the replicas in turn; halfway, kill NATS
	// (SIGKILL, no clean shutdown) and start it again on the same store. A
	// publish is retried with the same id until JetStream acknowledges it,
	// as a careful publisher would; only acknowledged events count.
	acked := map[int]uint64{}
	for i := range n {
		if i == n/2 {
			nats.Process.Signal(syscall.SIGKILL)
			nats.Wait()
			if seq, err := tryPublish(replicas[0], dataDir, `{"type":"roles_changed","subject":"nobody"}`); err == nil {
				t.Fatalf("a publish was acknowledged (seq %d) while NATS was down", seq)
			}
			// Within events.grace the replicas keep deciding from their state.
			if d := askDecision(t, replicas[1], tokens[0], "orders:approve"); d.Reason != "token_stale" {
				t.Fatalf("during the outage: %+v, want token_stale from the kept state", d)
			}
			nats = startNATS()
		}
		body := fmt.Sprintf(`{"id":"evt-%d","type":"roles_changed","subject":"user-%d"}`, i, i)
		acked[i] = waitFor(t, func() (uint64, bool) {
			seq, err := tryPublish(replicas[i%3], dataDir, body)
			if err != nil {
				time.Sleep(50 * time.Millisecond)
			}
			return seq, err == nil
		})
	}

	// A replica that starts now replays everything from the restarted store.
	replicas = append(replicas, startReplica("p4"))
	for _, r := range replicas {
		for i := range n {
			d := waitFor(t, func() (decisionResult, bool) {
				d := askDecision(t, r, tokens[i], "orders:approve")
				return d, d.Reason == "token_stale"
			})
			if d.Allow || !d.Refresh {
				t.Fatalf("%s: user-%d (event seq %d) = %+v", r, i, acked[i], d)
			}
		}
	}
}

// tryPublish posts an event with a development admin token.
func tryPublish(baseURL, dataDir, body string) (uint64, error) {
	dev, _, err := loadDevIssuer(dataDir)
	if err != nil {
		return 0, err
	}
	admin, _ := dev.mint("admin", []string{"warden-admin"}, 5*time.Minute, nil, time.Now())
	req, _ := http.NewRequest("POST", baseURL+"/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("%d %s", resp.StatusCode, raw)
	}
	var out struct{ Seq uint64 }
	err = json.Unmarshal(raw, &out)
	return out.Seq, err
}

// binaries holds warden and nats-server (of go.mod's version), built once
// per test binary for the tests that run separate processes.
var binaries struct {
	once sync.Once
	dir  string
	err  error
}

// buildBinaries builds warden and nats-server into a directory shared by
// the tests of this run, and returns it.
func buildBinaries(t *testing.T) string {
	t.Helper()
	binaries.once.Do(func() {
		binaries.dir, binaries.err = os.MkdirTemp("", "warden-bin-")
		for _, b := range [][2]string{{"warden", "."}, {"nats-server", "github.com/nats-io/nats-server/v2"}} {
			if binaries.err != nil {
				return
			}
			if out, err := exec.Command("go", "build", "-o", filepath.Join(binaries.dir, b[0]), b[1]).CombinedOutput(); err != nil {
				binaries.err = fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
			}
		}
	})
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
	return binaries.dir
}

// startProcess starts a program, logs its output into the test log when the
// test fails, and kills it at the end of the test.
func startProcess(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	return startProcessEnv(t, nil, name, args...)
}

// startProcessEnv is startProcess with env added to the environment.
func startProcessEnv(t *testing.T, env []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var mu sync.Mutex
	var log bytes.Buffer
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			mu.Lock()
			log.WriteString(s.Text() + "\n")
			mu.Unlock()
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
		pw.Close()
		if t.Failed() {
			mu.Lock()
			t.Logf("%s %s:\n%s", filepath.Base(name), strings.Join(args, " "), log.String())
			mu.Unlock()
		}
	})
	return cmd
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestMain removes the binaries the process tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}
