package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// natsCluster is three nats-server processes (of go.mod's version) routed
// into one cluster on loopback, JetStream on each, every client
// authenticated by nkey and every route by a password.
type natsCluster struct {
	t       *testing.T
	bin     string
	confs   []string
	clients []int
	procs   []*exec.Cmd
	seed    string // the replicas' user
	// publisherSeed is the publishers' user: it may publish events and
	// nothing else, as the embedded server's publisher user.
	publisherSeed string
}

func startCluster(t *testing.T, bin string) *natsCluster {
	t.Helper()
	dir := t.TempDir()
	c := &natsCluster{t: t, bin: bin, seed: filepath.Join(dir, "replica.nk"), publisherSeed: filepath.Join(dir, "publisher.nk")}
	newUser := func(seedFile string) string {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := kp.Seed()
		pub, _ := kp.PublicKey()
		if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
			t.Fatal(err)
		}
		return pub
	}
	replicaUser, publisherUser := newUser(c.seed), newUser(c.publisherSeed)
	routes := make([]int, 3)
	for i := range 3 {
		c.clients = append(c.clients, freePort(t))
		routes[i] = freePort(t)
	}
	for i := range 3 {
		var others []string
		for j, p := range routes {
			if j != i {
				others = append(others, fmt.Sprintf("nats-route://route:route-secret@127.0.0.1:%d", p))
			}
		}
		conf := filepath.Join(dir, fmt.Sprintf("n%d.conf", i))
		text := fmt.Sprintf(`server_name: n%d
listen: 127.0.0.1:%d
jetstream { store_dir: %q }
authorization { users = [
  { nkey: %s }
  { nkey: %s, permissions: { publish: { allow: ["warden.events.>"] }, subscribe: { allow: ["_INBOX.>"] } } }
] }
cluster {
  name: warden
  listen: 127.0.0.1:%d
  authorization { user: route, password: route-secret }
  routes = [ %s ]
}
`, i, c.clients[i], filepath.Join(dir, fmt.Sprint("store", i)), replicaUser, publisherUser, routes[i], strings.Join(others, ", "))
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		c.confs = append(c.confs, conf)
		c.procs = append(c.procs, nil)
		c.start(i)
	}
	return c
}

// start starts node i and waits until it accepts connections.
func (c *natsCluster) start(i int) {
	c.procs[i] = startProcess(c.t, filepath.Join(c.bin, "nats-server"), "-c", c.confs[i])
	addr := fmt.Sprintf("127.0.0.1:%d", c.clients[i])
	waitForWithin(c.t, 20*time.Second, func() (string, bool) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return err.Error(), false
		}
		conn.Close()
		return "", true
	})
}

// kill ends node i at once, without a clean shutdown.
func (c *natsCluster) kill(i int) {
	c.procs[i].Process.Signal(syscall.SIGKILL)
	c.procs[i].Wait()
}

// urls is the multi-URL events.nats_url of the cluster.
func (c *natsCluster) urls() string {
	var us []string
	for _, p := range c.clients {
		us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	return strings.Join(us, ",")
}

// healthy waits until the event stream has a leader and both followers
// are current.
func (c *natsCluster) healthy() {
	c.t.Helper()
	auth, err := nats.NkeyOptionFromSeed(c.seed)
	if err != nil {
		c.t.Fatal(err)
	}
	nc, err := nats.Connect(c.urls(), auth, nats.RetryOnFailedConnect(true))
	if err != nil {
		c.t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	waitForWithin(c.t, 60*time.Second, func() (string, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "WARDEN_EVENTS")
		if err != nil {
			return err.Error(), false
		}
		cl := s.CachedInfo().Cluster
		if cl == nil || cl.Leader == "" || len(cl.Replicas) != 2 {
			return fmt.Sprintf("%+v", cl), false
		}
		for _, r := range cl.Replicas {
			if !r.Current || r.Offline {
				return fmt.Sprintf("%s not current", r.Name), false
			}
		}
		return "", true
	})
}

// streamLeader is the index of the node leading the event stream.
func (c *natsCluster) streamLeader() int {
	c.t.Helper()
	auth, err := nats.NkeyOptionFromSeed(c.seed)
	if err != nil {
		c.t.Fatal(err)
	}
	nc, err := nats.Connect(c.urls(), auth)
	if err != nil {
		c.t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	return waitFor(c.t, func() (int, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "WARDEN_EVENTS")
		if err != nil || s.CachedInfo().Cluster == nil {
			return 0, false
		}
		var i int
		_, err = fmt.Sscanf(s.CachedInfo().Cluster.Leader, "n%d", &i)
		return i, err == nil
	})
}

// TestClusterFailover is issue 11's proof: three warden processes on a
// three-node NATS cluster (stream and policy bucket with 3 replicas), while
// events are published through them without pause: a node is killed and
// restarted, then the stream's leader, then a warden replica is restarted.
// Every event acknowledged must be enforced by every replica (none lost), a
// publish that was not acknowledged must have had an error answer, and
// decisions keep being answered by the replicas that were not restarted.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a NATS cluster and three warden processes")
	}
	bin := buildBinaries(t)
	cluster := startCluster(t, bin)
	dataDir := t.TempDir() // the shared development issuer
	dev, _, err := loadDevIssuer(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	type replica struct {
		url  string
		args []string
		proc *exec.Cmd
	}
	startReplica := func(id string, port int) *replica {
		r := &replica{url: fmt.Sprintf("http://127.0.0.1:%d", port), args: []string{"serve", "--data-dir", dataDir,
			"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--events-nats-url", cluster.urls(), "--events-nkey-seed-file", cluster.seed,
			"--events-stream-replicas", "3", "--events-replica-id", id, "--events-grace", "1m"}}
		r.proc = startProcess(t, filepath.Join(bin, "warden"), r.args...)
		return r
	}
	replicas := []*replica{startReplica("w1", freePort(t)), startReplica("w2", freePort(t)), startReplica("w3", freePort(t))}
	for _, r := range replicas {
		waitReadyWithin(t, r.url, 90*time.Second) // the cluster elects its leaders meanwhile
	}
	admin, _ := dev.mint("admin", []string{"warden-admin"}, 30*time.Minute, nil, time.Now())
	// The goroutines below reach the replicas by URL, which a restart keeps.
	urls := []string{replicas[0].url, replicas[1].url, replicas[2].url}

	// A publisher in another language, straight to the cluster with the
	// publishers' key: nats.js, as an identity provider's hook would
	// (testdata/publisher-js/stream.mjs), one event every 20 ms, each
	// printed with its acknowledgement or its error.
	node, jsDir := jsClient(t)
	var jsOut, jsErr syncBuffer
	jsPub := exec.Command(node, "stream.mjs", cluster.urls(), "js-user")
	jsPub.Dir, jsPub.Stdout, jsPub.Stderr = jsDir, &jsOut, &jsErr
	jsPub.Env = append(os.Environ(), "NKEY_SEED_FILE="+cluster.publisherSeed)
	if err := jsPub.Start(); err != nil {
		t.Fatal(err)
	}
	jsDone := make(chan error, 1)
	go func() { jsDone <- jsPub.Wait() }()
	t.Cleanup(func() { jsPub.Process.Kill() })

	// The publisher: a new subject each time, through the replicas in
	// turn, each publish waiting for every replica (?wait=500ms) so that the
	// answer also says how long the event took to be enforced.
	type outcome struct {
		i         int
		sent      time.Time
		acked     bool
		seq       uint64
		at        time.Time
		enforceMS int64
		complete  bool
		err       string
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		skip     = map[int]bool{} // replicas being restarted: not asked
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			url := urls[i%3]
			skipped := skip[i%3]
			mu.Unlock()
			if skipped {
				url = urls[(i+1)%3]
			}
			o := outcome{i: i, sent: time.Now()}
			status, body := adminPost(url+"/v1/events?wait=500ms", admin, fmt.Sprintf(`{"id":"evt-%d","type":"roles_changed","subject":"user-%d"}`, i, i))
			var ack struct {
				Seq      uint64 `json:"seq"`
				Enforced *struct {
					Applied, Total int
					ElapsedMS      int64 `json:"elapsed_ms"`
				} `json:"enforced"`
				Error *struct{ Code, Message string } `json:"error"`
			}
			jerr := json.Unmarshal(body, &ack)
			o.at = time.Now()
			switch {
			case status == 200 && jerr == nil && ack.Seq > 0:
				o.acked, o.seq = true, ack.Seq
				if e := ack.Enforced; e != nil {
					o.enforceMS, o.complete = e.ElapsedMS, e.Applied == e.Total && e.Total > 0
				}
			case status != 0 && (jerr != nil || ack.Error == nil || ack.Error.Code == ""):
				o.err = fmt.Sprintf("HTTP %d without the error shape: %s", status, body)
			default:
				o.err = string(body) // a clear error, or the replica was down
			}
			mu.Lock()
			outcomes = append(outcomes, o)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	})

	// Decisions keep being answered meanwhile.
	var decisionErrs []string
	wg.Go(func() {
		token, _ := dev.mint("reader", []string{"staff"}, 30*time.Minute, nil, time.Now())
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			for i, url := range urls {
				mu.Lock()
				skipped := skip[i]
				mu.Unlock()
				if skipped {
					continue
				}
				body, _ := json.Marshal(map[string]any{"token": token, "action": "orders:read"})
				resp, err := http.Post(url+"/v1/decision", "application/json", bytes.NewReader(body))
				if err != nil || resp.StatusCode != 200 {
					mu.Lock()
					decisionErrs = append(decisionErrs, fmt.Sprintf("%s: %v %v", url, err, resp))
					mu.Unlock()
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}
	})

	phase := func(name string, d time.Duration) (from, to time.Time) {
		t.Logf("%s", name)
		from = time.Now()
		time.Sleep(d)
		return from, time.Now()
	}
	phase("steady", 2*time.Second)
	follower := (cluster.streamLeader() + 1) % 3
	cluster.kill(follower)
	nodeDownFrom, _ := phase(fmt.Sprintf("node n%d killed", follower), 2*time.Second)
	cluster.start(follower)
	_, nodeDownTo := phase("node restarted", 3*time.Second)
	leader := cluster.streamLeader()
	cluster.kill(leader)
	leaderDownFrom, _ := phase(fmt.Sprintf("stream leader n%d killed", leader), 3*time.Second)
	cluster.start(leader)
	_, leaderDownTo := phase("leader restarted", 3*time.Second)
	// The replica restart is its own failure: in a cluster that has
	// recovered from the last one.
	cluster.healthy()
	mu.Lock()
	skip[1] = true
	mu.Unlock()
	replicas[1].proc.Process.Signal(syscall.SIGTERM)
	replicas[1].proc.Wait()
	replicas[1] = startReplica("w2", portOf(replicas[1].url))
	waitReadyWithin(t, replicas[1].url, 90*time.Second)
	mu.Lock()
	skip[1] = false
	mu.Unlock()
	phase("warden replica w2 restarted", 2*time.Second)
	close(stop)
	wg.Wait()
	jsPub.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-jsDone:
		if err != nil {
			t.Errorf("stream.mjs: %v\n%s", err, jsErr.String())
		}
	case <-time.After(15 * time.Second):
		t.Errorf("stream.mjs did not stop within 15 s of SIGTERM\n%s", jsErr.String())
	}

	// The JavaScript publisher's outcomes: each acknowledged (a stream
	// sequence) or refused with an error, never neither.
	type jsLine struct {
		N           int
		ID, Subject string
		Sent, Done  int64 // Unix milliseconds
		Seq         uint64
		Error       string
	}
	var jsAcked []jsLine
	jsErrors := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(jsOut.String()), "\n") {
		var o jsLine
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("stream.mjs printed %q: %v\n%s", l, err, jsErr.String())
		}
		switch {
		case o.Seq > 0 && o.Error == "":
			jsAcked = append(jsAcked, o)
		case o.Seq == 0 && o.Error != "":
			jsErrors[o.Error]++
		default:
			t.Errorf("nats.js publish %d neither acknowledged nor refused with an error: %s", o.N, l)
		}
	}
	if len(jsAcked) < 20 {
		t.Fatalf("only %d nats.js publishes acknowledged (errors %v)\n%s", len(jsAcked), jsErrors, jsErr.String())
	}

	// Every acknowledged event is enforced by every replica.
	var acked []outcome
	var failed []string
	for _, o := range outcomes {
		if o.acked {
			acked = append(acked, o)
		} else if strings.HasPrefix(o.err, "HTTP") {
			failed = append(failed, o.err)
		}
	}
	if len(failed) > 0 {
		t.Errorf("publishes answered without an error: %v", failed)
	}
	if len(acked) < 20 {
		t.Fatalf("only %d of %d publishes acknowledged", len(acked), len(outcomes))
	}
	for _, r := range replicas {
		for _, o := range acked {
			// Issued before the publish (iat has whole seconds), so the
			// event makes it stale.
			tok, _ := dev.mint(fmt.Sprintf("user-%d", o.i), []string{"manager"}, 30*time.Minute, nil, o.sent.Add(-time.Second))
			d := waitForWithin(t, 30*time.Second, func() (decisionResult, bool) {
				d := askDecision(t, r.url, tok, "orders:approve")
				return d, d.Reason == "token_stale"
			})
			if d.Allow {
				t.Fatalf("%s: acknowledged event %d (seq %d) not enforced: %+v", r.url, o.i, o.seq, d)
			}
		}
		for _, o := range jsAcked {
			tok, _ := dev.mint(o.Subject, []string{"manager"}, 30*time.Minute, nil, time.UnixMilli(o.Sent).Add(-time.Second))
			d := waitForWithin(t, 30*time.Second, func() (decisionResult, bool) {
				d := askDecision(t, r.url, tok, "orders:approve")
				return d, d.Reason == "token_stale"
			})
			if d.Allow {
				t.Fatalf("%s: event %s acknowledged to nats.js (seq %d) not enforced: %+v", r.url, o.ID, o.Seq, d)
			}
		}
	}
	if len(decisionErrs) > 0 {
		t.Errorf("%d decisions not answered by replicas that were up, e.g. %s", len(decisionErrs), decisionErrs[0])
	}
	// The fleet converged.
	var fleet struct {
		Replicas []struct {
			ID         string `json:"id"`
			AppliedSeq uint64 `json:"applied_seq"`
			Ready      bool   `json:"ready"`
		} `json:"replicas"`
	}
	last := max(acked[len(acked)-1].seq, jsAcked[len(jsAcked)-1].Seq)
	waitForWithin(t, 30*time.Second, func() (bool, bool) {
		getJSON(t, replicas[0].url+"/v1/replicas", admin, &fleet)
		ok := len(fleet.Replicas) == 3
		for _, r := range fleet.Replicas {
			ok = ok && r.Ready && r.AppliedSeq >= last
		}
		return ok, ok
	})

	// What the failures cost: the longest time without an acknowledged
	// publish, and enforcement on every replica, p99, in each window.
	report := func(name string, from, to time.Time) {
		var gaps, prop []int64
		prev := from
		for _, o := range acked {
			if o.at.Before(from) || o.at.After(to) {
				continue
			}
			gaps = append(gaps, o.at.Sub(prev).Milliseconds())
			prev = o.at
			if o.complete {
				prop = append(prop, o.enforceMS)
			}
		}
		var jsGaps []int64
		prev = from
		for _, o := range jsAcked {
			if at := time.UnixMilli(o.Done); !at.Before(from) && !at.After(to) {
				jsGaps = append(jsGaps, at.Sub(prev).Milliseconds())
				prev = at
			}
		}
		t.Logf("%s: admin API: %d acknowledged, longest without an acknowledged publish %d ms, enforcement p99 %d ms (%d measured); nats.js: %d acknowledged, longest without %d ms",
			name, len(gaps), maxOf(gaps), percentile(prop, 99), len(prop), len(jsGaps), maxOf(jsGaps))
	}
	report("whole run", outcomes[0].at, outcomes[len(outcomes)-1].at)
	report("node killed and back", nodeDownFrom, nodeDownTo)
	report("stream leader killed and back", leaderDownFrom, leaderDownTo)
	t.Logf("admin API: %d publishes, %d acknowledged, %d refused with an error", len(outcomes), len(acked), len(outcomes)-len(acked))
	t.Logf("nats.js: %d publishes, %d acknowledged, refused with an error: %v", len(jsAcked)+sumOf(jsErrors), len(jsAcked), jsErrors)
}

func adminPost(url, token, body string) (int, []byte) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes()
}

func portOf(url string) int {
	var p int
	fmt.Sscanf(url[strings.LastIndex(url, ":")+1:], "%d", &p)
	return p
}

func maxOf(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	return slices.Max(xs)
}

func percentile(xs []int64, p int) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func sumOf(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
